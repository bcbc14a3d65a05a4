// Template editor: "Preview changes" renders the edits in the preview frame; when that
// preview succeeds, the errors still shown from an earlier save or preview are removed (they
// were about a version that has since been fixed). The frame stays sandboxed (no scripts, an
// opaque origin): the page asks for the preview itself, learns from the answer's status
// whether it rendered, and hands the answer to the frame. Without scripts the button posts
// to the frame as a plain form.
(function () {
  "use strict";
  var form = document.getElementById("template-form");
  var frame = document.querySelector("iframe[name=preview]");
  if (!form || !frame || !window.fetch) return;

  // The preview renders the parts: their errors are gone. (A name already taken is not
  // something a preview checks: that error stays, and so does the summary above the form.)
  function clearErrors() {
    ["html", "text", "layout_id"].forEach(function (name) {
      var field = document.getElementById(name), message = document.getElementById(name + "-error");
      if (message) message.remove();
      if (field) {
        field.removeAttribute("aria-invalid");
        field.removeAttribute("aria-describedby");
      }
    });
    if (!form.querySelector("[aria-invalid=true]")) {
      document.querySelectorAll("main .flash-error").forEach(function (node) { node.remove(); });
    }
  }

  form.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (!button || button.getAttribute("formtarget") !== "preview") return;
    event.preventDefault();
    fetch(button.getAttribute("formaction"), {method: "POST", body: new FormData(form),
                                              credentials: "same-origin"})
      .then(function (response) {
        return response.text().then(function (html) {
          frame.srcdoc = html;
          if (response.ok) clearErrors();
          form.dataset.preview = response.ok ? "ok" : "error";
        });
      })
      .catch(function () { form.dataset.preview = "failed"; });
  });
})();
