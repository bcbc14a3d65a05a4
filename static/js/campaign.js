// Campaign page: preview tabs (desktop, phone, text) and the live progress bar.
(function () {
  var frames = document.querySelector(".preview-frames");
  document.querySelectorAll(".tabs [data-view]").forEach(function (tab) {
    tab.addEventListener("click", function () {
      frames.dataset.view = tab.dataset.view;
      document.querySelectorAll(".tabs [data-view]").forEach(function (t) { t.classList.toggle("active", t === tab); });
    });
  });

  var card = document.getElementById("progress-card");
  if (!card || card.dataset.status !== "sending") return;
  var lang = document.documentElement.lang;
  var text = function (id, value) { document.getElementById(id).textContent = value; };
  function eta(seconds) {
    if (seconds === null || seconds === undefined) return "";
    var m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return (lang === "pl" ? " · pozostało ok. " : " · about ") + (m ? m + " min " : "") + s + " s" + (lang === "pl" ? "" : " left");
  }
  function poll() {
    fetch(card.dataset.url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (p) {
        var pct = p.percent;  // decided by the server (a cancelled campaign shows what was sent)
        document.querySelector("#progress-bar > span").style.width = pct + "%";
        document.getElementById("progress-bar").setAttribute("aria-valuenow", pct);
        text("progress-pct", pct + " %");
        text("progress-sent", p.sent); text("progress-queued", p.queued);
        text("progress-failed", p.failed); text("progress-total", p.total);
        text("progress-rate-wrap", (p.rate ? " · " + p.rate.toFixed(1) + (lang === "pl" ? " wiad./s" : " msg/s") : "") + eta(p.eta_seconds));
        if (p.status === "sending") { setTimeout(poll, 1000); }
        else { setTimeout(function () { window.location.reload(); }, 800); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
