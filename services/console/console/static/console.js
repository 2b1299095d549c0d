/* Leadrelay console: times in the viewer's time zone, SLA countdowns, live updates (server-sent
   events) and the CSRF header for htmx. No inline script anywhere: the CSP forbids it. */
(function () {
  "use strict";
  var body = document.body;
  var data = body.dataset;
  var lang = data.lang || "en";
  var locale = lang === "zh" ? "zh-CN" : lang;
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var dateFormat = null;
  try {
    dateFormat = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
  } catch (e) {
    dateFormat = null;
  }

  document.addEventListener("htmx:configRequest", function (event) {
    if (csrf) {
      event.detail.headers["X-CSRF-Token"] = csrf.getAttribute("content");
    }
  });

  function formatTimes(root) {
    root.querySelectorAll("time.ts").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (dateFormat && !isNaN(when.getTime())) {
        el.textContent = dateFormat.format(when);
        el.setAttribute("title", when.toISOString());
      }
    });
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var days = Math.floor(s / 86400);
    var hours = Math.floor((s % 86400) / 3600);
    var minutes = Math.floor((s % 3600) / 60);
    if (days > 0) {
      return days + (lang === "zh" ? "" : " ") + data.tDays + " " + pad(hours) + ":" + pad(minutes);
    }
    return (hours > 0 ? hours + ":" + pad(minutes) : String(minutes)) + ":" + pad(s % 60);
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var due = Date.parse(el.getAttribute("datetime"));
      if (isNaN(due)) {
        return;
      }
      var left = due - now;
      el.textContent = (left >= 0 ? data.tLeft : data.tOverdue).replace("{t}", span(left));
      var box = el.closest(".deadline, .clock");
      if (box) {
        box.classList.toggle("overdue", left < 0);
      }
      var card = el.closest(".lead-card");
      if (card) {
        card.classList.toggle("is-overdue", left < 0);
      }
    });
  }

  function refresh(root) {
    formatTimes(root);
    tick();
    if (window.htmx) {
      window.htmx.process(root);
    }
  }

  function live() {
    var url = data.live;
    var target = document.getElementById(data.liveTarget || "");
    if (!url || !target || !window.EventSource) {
      return;
    }
    var status = document.getElementById("live-status");
    function online(on) {
      if (status) {
        status.hidden = false;
        status.textContent = on ? data.tLive : data.tLiveOff;
        status.classList.toggle("off", !on);
      }
    }
    var source = new EventSource(url);
    source.onopen = function () {
      online(true);
    };
    source.onerror = function () {
      online(false);
    };
    source.addEventListener("offline", function () {
      online(false);
    });
    source.addEventListener("queue", function (event) {
      online(true);
      target.innerHTML = event.data;
      refresh(target);
    });
    source.addEventListener("alerts", function (event) {
      online(true);
      target.insertAdjacentHTML("afterbegin", event.data);
      var empty = document.getElementById("alerts-empty");
      if (empty) {
        empty.hidden = true;
      }
      refresh(target);
    });
    source.addEventListener("signout", function () {
      source.close();
      window.location.assign("/login?ended=1");
    });
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  // After htmx replaced the work panel: times, countdowns, and the focus on what happened.
  document.addEventListener("htmx:afterSettle", function () {
    formatTimes(document);
    tick();
    var said = document.querySelector("#work .problem, #work .notice");
    if (said) {
      said.setAttribute("tabindex", "-1");
      said.focus();
    }
  });

  formatTimes(document);
  tick();
  window.setInterval(tick, 1000);
  live();
})();
