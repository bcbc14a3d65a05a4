// Staff pages: a form with data-confirm asks before it is sent (no inline handlers: the CSP
// allows scripts from this site only).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
}, true);
