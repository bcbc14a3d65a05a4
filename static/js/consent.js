// The sign-up form's consent sentence names the newsletters ticked, built from the parts the
// server gives (mailer.consent.sign_up_parts) exactly as the server builds it for the record.
(function () {
  function sentence(holder, names) {
    var data = holder.dataset;
    if (!names.length) { return data.none; }
    var quoted = names.map(function (name) { return data.quote.replace("{names}", name); });
    var joined = quoted.length < 2 ? quoted.join("") :
      data.and.replace("{items}", quoted.slice(0, -1).join(", ")).replace("{last}", quoted[quoted.length - 1]);
    var form = "many";
    if (names.length === 1) { form = "one"; }
    else if (window.Intl && Intl.PluralRules) {
      var rule = new Intl.PluralRules(data.lang || "pl").select(names.length);
      form = rule === "few" ? "few" : "many";
    }
    return data[form].replace("{names}", joined);
  }
  function update(form) {
    var holder = form.querySelector(".consent-sentence[data-one]");
    if (!holder) { return; }
    var names = Array.prototype.filter.call(form.querySelectorAll("input[name=lists][data-name]"),
      function (box) { return box.checked; }).map(function (box) { return box.dataset.name; });
    holder.textContent = sentence(holder, names);
  }
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box instanceof HTMLInputElement && box.name === "lists" && box.form) { update(box.form); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(update);
  });
})();
