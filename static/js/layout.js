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

  // Tabs that switch in the page (role=tablist): the selected tab is marked and is the one
  // in the tab order; arrow keys, Home and End move between tabs (WAI-ARIA tabs pattern).
  function setUpTabs(list) {
    var tabs = Array.prototype.slice.call(list.querySelectorAll("[role=tab]"));
    function select(tab) {
      tabs.forEach(function (t) {
        var chosen = t === tab;
        t.setAttribute("aria-selected", chosen ? "true" : "false");
        t.setAttribute("tabindex", chosen ? "0" : "-1");
      });
      var panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) panel.setAttribute("aria-labelledby", tab.id);
    }
    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function () { select(tab); });
      tab.addEventListener("keydown", function (event) {
        var next = {ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1}[event.key];
        if (next === undefined) return;
        event.preventDefault();
        var target = tabs[(next + tabs.length) % tabs.length];
        target.focus();
        target.click();
      });
    });
  }

  // A table wider than a phone scrolls in its own box: one whose cells hold nothing to focus
  // is made focusable so that it can be scrolled from the keyboard (WCAG 2.1.1).
  function scrollableTables() {
    document.querySelectorAll("main table").forEach(function (table) {
      var scrolls = table.scrollWidth > table.clientWidth + 1;
      if (scrolls && !table.hasAttribute("tabindex")) {
        table.setAttribute("tabindex", "0");
        table.dataset.scrollFocus = "1";
      } else if (!scrolls && table.dataset.scrollFocus) {
        table.removeAttribute("tabindex");
        delete table.dataset.scrollFocus;
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
    document.querySelectorAll("[role=tablist]").forEach(setUpTabs);
    scrollableTables();
    window.addEventListener("resize", scrollableTables);
    focusFirstError();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
