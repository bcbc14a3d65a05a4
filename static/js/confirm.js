// Staff pages: a form with data-confirm (or the button that sends it, when that button has
// its own data-confirm) asks before it is sent (no inline handlers: the CSP allows scripts
// from this site only).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) {
    return;
  }
  var button = event.submitter;
  var question = (button && button.dataset && button.dataset.confirm) || form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
