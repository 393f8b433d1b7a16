// presenced web app: live updates (Server-Sent Events from /events) and the colleagues search.
// Everything works without this script; it only spares the reload.
(function () {
  "use strict";
  var people = document.getElementById("people");
  var page = document.querySelector(".status-page");
  var watched = page && (page.getAttribute("data-me") || page.getAttribute("data-user"));
  var adminRows = document.querySelector("table.users");

  function replaceRow(u) {
    var old = document.getElementById("u-" + u.user);
    var tmp = document.createElement("ul");
    tmp.innerHTML = u.html;
    var row = tmp.firstElementChild;
    if (!row) { return; }
    if (old) { old.replaceWith(row); } else { people.appendChild(row); }
    filter();
    row.classList.add("flash");
  }

  var refreshing = false;
  function refreshCard() {
    if (refreshing) { return; }
    refreshing = true;
    var url = "/status-card" + (page.getAttribute("data-user") ? "?user=" + encodeURIComponent(watched) : "");
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      refreshing = false;
      if (html === null) { return; }
      document.getElementById("status-card").innerHTML = html;
      markActive();
    }).catch(function () { refreshing = false; });
  }

  // markActive moves the tick to the active profile after a live update of the status card.
  function markActive() {
    var cur = document.getElementById("active-profile");
    if (!cur) { return; }
    document.querySelectorAll(".profile").forEach(function (b) {
      var on = b.getAttribute("data-profile") === cur.getAttribute("data-id");
      b.classList.toggle("active", on);
      if (on) { b.setAttribute("aria-current", "true"); } else { b.removeAttribute("aria-current"); }
    });
  }

  var q = document.getElementById("q");
  function filter() {
    if (!q || !people) { return; }
    var term = q.value.trim().toLowerCase();
    people.querySelectorAll(".person").forEach(function (li) {
      li.hidden = term !== "" && (li.getAttribute("data-search") || "").indexOf(term) < 0;
    });
  }
  if (q) { q.addEventListener("input", filter); }

  if (!window.EventSource || (!people && !watched && !adminRows)) { return; }

  // refreshPeople reads the colleagues list again (when there is no stream).
  function refreshPeople() {
    fetch("/colleagues", { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html === null) { return; }
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("people");
      if (fresh) { people.innerHTML = fresh.innerHTML; filter(); }
    }).catch(function () {});
  }

  var es = null, polling = null, polls = 0;
  var pollEvery = 20000, retryEvery = 6; // the stream is tried again every sixth poll (2 min)
  function poll() {
    polls++;
    if (people) { refreshPeople(); }
    if (watched) { refreshCard(); }
    if (polls % retryEvery === 0) { connect(); }
  }

  function connect() {
    if (es) { es.close(); }
    es = new EventSource("/events");
    es.addEventListener("presence", function (ev) {
      var u;
      try { u = JSON.parse(ev.data); } catch (e) { return; }
      if (people) { replaceRow(u); }
      if (watched && u.user === watched) { refreshCard(); }
      if (adminRows && document.getElementById("a-" + u.user)) {
        document.getElementById("a-" + u.user).classList.add("flash");
      }
    });
    es.addEventListener("reload", function () { location.reload(); });
    es.onopen = function () {
      document.documentElement.setAttribute("data-live", "open");
      if (polling) { clearInterval(polling); polling = null; }
    };
    es.onerror = function () {
      // A dropped stream is reopened by the browser itself; a refused one (presenced answers
      // 503 when http.max_event_streams are open) is closed for good: the page then reloads
      // what it shows every 20 s, and tries the stream again now and then.
      if (es.readyState !== EventSource.CLOSED) { return; }
      document.documentElement.setAttribute("data-live", "polling");
      if (!polling) { polls = 0; polling = setInterval(poll, pollEvery); }
    };
  }
  document.documentElement.setAttribute("data-live", "connecting");
  connect();
})();
