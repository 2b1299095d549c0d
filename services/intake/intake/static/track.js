/* Leadrelay tracking in one line: <script src=".../v1/track.js" data-write-key="KEY" async></script>.
   Records page views and named events (Segment's page/track JSON) with a first-party anonymous id in
   localStorage on the site's own domain; no cookies, no third-party requests. The server appends the
   rules file's privacy settings (P). API: leadrelay.page(), leadrelay.track(name, props), leadrelay.consent(bool). */
(function (P) {
  "use strict";
  var w = window, n = navigator, s = document.currentScript, AID = "leadrelay.anonymous_id", OK = "leadrelay.consent";
  var base = s ? new URL(s.src).origin : "", key = s ? s.getAttribute("data-write-key") : null, pending = [];
  function store(k, v) {
    try { if (v === undefined) return w.localStorage.getItem(k); if (v === null) w.localStorage.removeItem(k); else w.localStorage.setItem(k, v); } catch (e) { return null; }
    return v;
  }
  function uuid() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)), h = [], i;
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    for (i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1));
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") + "-" +
      h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }
  function optedOut() {
    return (P.dnt && (n.doNotTrack === "1" || w.doNotTrack === "1")) || (P.gpc && n.globalPrivacyControl === true);
  }
  function allowed() { return !optedOut() && (!P.consent || store(OK) === "yes"); }
  function anonymousId() {
    var id = store(AID);
    if (!id) { id = uuid(); store(AID, id); }
    return id;
  }
  function send(path, msg) {
    if (!allowed()) { if (!optedOut()) pending.push([path, msg]); return; }
    msg.anonymousId = anonymousId();
    msg.writeKey = key;
    fetch(base + path, {
      method: "POST", mode: "cors", credentials: "omit", keepalive: true,
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(msg)
    }).catch(function () {});
  }
  function context() {
    return {
      page: { url: location.href, path: location.pathname, title: document.title, referrer: document.referrer },
      locale: n.language, userAgent: n.userAgent, library: { name: "leadrelay-track.js", version: "1" }
    };
  }
  var api = {
    page: function (props) {
      var p = { url: location.href, path: location.pathname, title: document.title, referrer: document.referrer }, k;
      for (k in props || {}) p[k] = props[k];
      send("/v1/p", { type: "page", properties: p, context: context(), messageId: uuid(), timestamp: new Date().toISOString() });
    },
    track: function (event, props) {
      send("/v1/t", { type: "track", event: String(event), properties: props || {}, context: context(), messageId: uuid(), timestamp: new Date().toISOString() });
    },
    consent: function (granted) {
      store(OK, granted ? "yes" : null);
      if (!granted) { store(AID, null); pending = []; return; }
      var queued = pending; pending = [];
      queued.forEach(function (q) { send(q[0], q[1]); });
    },
    anonymousId: function () { return allowed() ? anonymousId() : null; }
  };
  var queued = Array.isArray(w.leadrelay) ? w.leadrelay : [];  // calls made before the script loaded
  w.leadrelay = api;
  api.page();
  queued.forEach(function (c) { if (api[c[0]]) api[c[0]].apply(null, c.slice(1)); });
})(
