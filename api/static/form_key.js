// Money forms (the cashier desk, the bank statement review): the page's form key belongs in
// its address, so that the browser's Back button brings back the same key and a form sent
// again answers with the first receipt instead of taking the money twice (the server keeps
// the key of every form it answered). A page opened without a key in its address gets one
// from the server; this script writes it into the address (history.replaceState: no reload,
// no new history entry). Without scripts the first form of a visit keeps the old address;
// every page the desk moves to after a payment already carries its key.
// Served from /static: the pages' Content-Security-Policy runs no inline script.
(function () {
  "use strict";
  var holder = document.querySelector("[data-form-key]");
  if (!holder || !window.history || !window.history.replaceState) {
    return;
  }
  var key = holder.getAttribute("data-form-key");
  if (!/^[0-9a-f]{32}$/.test(key || "")) {
    return;
  }
  var url = new URL(window.location.href);
  if (url.searchParams.get("form") === key) {
    return;
  }
  url.searchParams.set("form", key);
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
})();
