// Page layout helpers for every page (the CSP allows no inline script):
// - the menu button that opens and closes the main menu on narrow screens;
// - after a refused form, the first field in error is scrolled to and focused (on a phone
//   the messages would otherwise be below the fold with nothing visible happening).
(function () {
  "use strict";

  function setUpMenu() {
    var toggle = document.querySelector(".nav-toggle");
    var nav = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
    if (!toggle || !nav) return;
    document.documentElement.classList.add("nav-collapsible");
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      nav.classList.toggle("open", open);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && nav.classList.contains("open")) {
        toggle.setAttribute("aria-expanded", "false");
        nav.classList.remove("open");
        toggle.focus();
      }
    });
  }

  function focusFirstError() {
    var field = document.querySelector("main [aria-invalid=true]");
    if (!field) return;
    field.scrollIntoView({block: "center"});
    field.focus({preventScroll: true});
  }

  function ready() {
    setUpMenu();
    focusFirstError();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
