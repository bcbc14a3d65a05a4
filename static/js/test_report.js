// Campaign page: while a test send is on its way (or being retried), ask for its report every
// two seconds, for up to two minutes, and show the mail server's answer when it comes.
(function () {
  var tries = 0;
  function poll() {
    var report = document.getElementById("test-report");
    if (!report || ["queued", "retrying"].indexOf(report.dataset.state) < 0 || tries++ > 60) return;
    setTimeout(function () {
      fetch(report.dataset.url, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var box = document.createElement("div");
          box.innerHTML = html;
          var fresh = box.querySelector("#test-report");
          if (fresh) { report.replaceWith(fresh); }
          poll();
        })
        .catch(poll);
    }, 2000);
  }
  poll();
})();
