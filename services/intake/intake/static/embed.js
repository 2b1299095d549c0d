/* Leadrelay form embed. Renders a form from the rules file into [data-leadrelay-form="<id>"], or
   enhances the plain <form> carrying that attribute; validates like the server; posts with fetch().
   No framework, no third-party requests, no cookies. The server appends the form's settings (C). */
(function (C) {
  "use strict";
  var d = document, w = window, LANGS = ["en", "sv", "de", "nl", "zh"], AID = "leadrelay.anonymous_id";
  var base = C.base || (d.currentScript ? new URL(d.currentScript.src).origin : "");
  var action = base + "/v1/forms/" + encodeURIComponent(C.form) + "/submissions";
  var EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/, PHONE = /^\+?[0-9][0-9 ()./-]{4,24}$/;
  // As intake reads a company size (250, 51-200, 1000+) and a web address (a host with a dot).
  var NUMBER = /^\s*\d[\d\s,.]*\s*(?:[-\u2013]\s*\d[\d\s,.]*|\+)?\s*$/, URL_ = /^(?:[a-z][a-z0-9+.-]*:\/\/)?[^\s\/:?#]+\.[^\s\/:?#]+(?:[:\/?#]\S*)?$/i;

  function lang() {
    var l = (d.documentElement.lang || navigator.language || "en").toLowerCase().slice(0, 2);
    return LANGS.indexOf(l) < 0 ? "en" : l;
  }
  function txt(t, l) { return (t && (t[l] || t.en)) || ""; }
  function el(tag, attrs, text) {
    var e = d.createElement(tag), k;
    for (k in attrs || {}) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }
  function anonymousId() {
    try { return w.localStorage.getItem(AID); } catch (e) { return null; }
  }
  function uuid() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)), h = [], i;
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    for (i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1));
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") + "-" +
      h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }

  function render(host) {
    var l = lang(), M = C.messages[l] || C.messages.en, form, prefix = "lr-" + C.form + "-", status;
    if (host.tagName === "FORM") { form = host; form.textContent = ""; }
    else { form = el("form"); host.textContent = ""; host.appendChild(form); }
    form.setAttribute("action", action);
    form.setAttribute("method", "post");
    form.setAttribute("novalidate", "");
    form.className = (form.className + " leadrelay-form").trim();
    // A little layout unless the site styles the classes itself (data-leadrelay-style="none").
    var inputs = {}, plain = host.getAttribute("data-leadrelay-style") !== "none";
    var fields = C.fields.slice(), fi = fields.map(function (f) { return f.name; });
    var gi = fi.indexOf("first_name"), fa = fi.indexOf("last_name");
    if (l === "zh" && gi >= 0 && fa === gi + 1) fields.splice(gi, 2, fields[fa], fields[gi]);  // family name first
    fields.forEach(function (f) {
      var id = prefix + f.name, wrap = el("div", { "class": "lr-field" });
      var label = el("label", { "for": id }, txt(f.label, l) + (f.required ? " *" : ""));
      var input = f.type === "textarea" ? el("textarea", { rows: "4" }) : el("input", {
        type: { email: "email", tel: "tel", url: "text", number: "text" }[f.type] || "text",
        inputmode: { url: "url", number: "numeric" }[f.type] || null,
        autocomplete: { email: "email", tel: "tel", country: "country-name", first_name: "given-name",
          last_name: "family-name", company: "organization", job_title: "organization-title" }[f.type === "text" ? f.name : f.type] || null
      });
      input.id = id; input.name = f.name;
      if (f.required) input.setAttribute("aria-required", "true");
      var err = el("span", { "class": "lr-error", id: id + "-error" });
      if (plain) err.style.color = "#b3261e";
      input.setAttribute("aria-describedby", id + "-error");
      wrap.appendChild(label); wrap.appendChild(input); wrap.appendChild(err);
      if (plain) { wrap.style.margin = "0 0 .8em"; label.style.display = err.style.display = "block"; input.style.maxWidth = "100%"; }
      form.appendChild(wrap);
      inputs[f.name] = { input: input, error: err, field: f };
    });
    if (C.consent) {
      var cid = prefix + C.consent.field, cw = el("div", { "class": "lr-field lr-consent" });
      var box = el("input", { type: "checkbox", id: cid, name: C.consent.field, value: "yes", "aria-describedby": cid + "-error" });
      var cl = el("label", { "for": cid }, txt(C.consent.text, l) + (C.consent.required ? " *" : ""));
      var cerr = el("span", { "class": "lr-error", id: cid + "-error" });
      if (plain) cerr.style.color = "#b3261e";
      cw.appendChild(box); cw.appendChild(cl); cw.appendChild(cerr);
      if (plain) { cw.style.margin = "0 0 .8em"; cerr.style.display = "block"; }
      form.appendChild(cw);
      inputs[C.consent.field] = { input: box, error: cerr, field: { name: C.consent.field, type: "consent", required: C.consent.required } };
    }
    if (C.honeypot) {  // off-screen, not display:none (some bots skip hidden fields); people never reach it
      var hp = el("div", { "aria-hidden": "true" });
      hp.style.position = "absolute"; hp.style.left = "-10000px"; hp.style.height = "1px"; hp.style.overflow = "hidden";
      hp.appendChild(el("input", { type: "text", name: C.honeypot, tabindex: "-1", autocomplete: "off" }));
      form.appendChild(hp);
    }
    var widget = null, widgetId, provider = function () { return C.captcha && (C.captcha.kind === "turnstile" ? w.turnstile : w.grecaptcha); };
    if (C.captcha) {  // the provider's widget (its own script, which the page loads, fills in the token field)
      var kw = el("div", { "class": "lr-field lr-captcha" }), kerr = el("span", { "class": "lr-error", id: prefix + "captcha-error" });
      widget = el("div", { "class": C.captcha.kind === "turnstile" ? "cf-turnstile" : "g-recaptcha", "data-sitekey": C.captcha.site_key });
      if (plain) { kw.style.margin = "0 0 .8em"; kerr.style.color = "#b3261e"; kerr.style.display = "block"; }
      kw.appendChild(widget); kw.appendChild(kerr); form.appendChild(kw);
      inputs[C.captcha.field] = { input: widget, error: kerr, field: { name: C.captcha.field, type: "captcha", required: true } };
      var api = provider();  // loaded already: render now (else its script renders the element when it loads)
      if (api && api.render) try { widgetId = api.render(widget, { sitekey: C.captcha.site_key }); } catch (e) {}
    }
    var page = el("input", { type: "hidden", name: "page_url" }); page.value = location.href; form.appendChild(page);
    status = el("p", { "class": "lr-status", role: "status", "aria-live": "polite" });
    var button = el("button", { type: "submit" }, M.submit);
    form.appendChild(status); form.appendChild(button);

    // A server error in the page's language where the snippet has the words (as intake's own page does).
    function local(name, type, msg) {
      var f = inputs[name];
      if (!f) return msg;
      if (f.field.type === "consent") return M.consent;
      if (f.field.type === "captcha") return M.captcha;
      if (type === "missing") return M.required;
      return ({ email: M.email, tel: M.phone, number: M.number, url: M.url, country: M.country })[f.field.type] || msg;
    }
    function show(name, msg) {
      var f = inputs[name];
      if (!f) { status.textContent = msg; return; }
      f.error.textContent = msg;
      f.input.setAttribute("aria-invalid", "true");
    }
    function clear() {
      Object.keys(inputs).forEach(function (n) { inputs[n].error.textContent = ""; inputs[n].input.removeAttribute("aria-invalid"); });
      status.textContent = "";
    }
    function check() {
      var bad = [];
      Object.keys(inputs).forEach(function (n) {
        var f = inputs[n], t = f.field.type, token = t === "captcha" && form.querySelector('[name="' + n + '"]');
        var v = t === "consent" ? (f.input.checked ? "yes" : "") : t === "captcha" ? (token ? token.value : "") : f.input.value.trim();
        var msg = null;
        if (!v) { if (f.field.required) msg = t === "consent" ? M.consent : t === "captcha" ? M.captcha : M.required; }
        else if (f.field.type === "email" && !EMAIL.test(v)) msg = M.email;
        else if (f.field.type === "tel" && !PHONE.test(v)) msg = M.phone;
        else if (f.field.type === "number" && !NUMBER.test(v)) msg = M.number;
        else if (f.field.type === "url" && !URL_.test(v)) msg = M.url;
        if (msg) { show(n, msg); bad.push(f.input); }
      });
      return bad;
    }
    function done() {
      var ok = el("p", { "class": "lr-success", role: "status", tabindex: "-1" }, M.success);
      form.replaceWith(ok);
      ok.focus();
    }
    // A plain HTML post that came back with errors (no script then): show them once the script runs.
    var q = new URLSearchParams(location.search);
    if (q.get("lr_form") === C.form) {
      if (q.get("lr_submitted")) { done(); return; }
      q.forEach(function (v, k) { if (k.indexOf("lr_error.") === 0) show(k.slice(9), local(k.slice(9), "", v)); else if (k === "lr_error") status.textContent = v; });
    }
    var busy = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (busy) return;  // the double-click guard
      clear();
      var bad = check();
      if (bad.length) { bad[0].focus(); return; }
      busy = true; button.disabled = true; button.textContent = M.sending;
      var lr = w.leadrelay && w.leadrelay.consent ? w.leadrelay : null;
      if (lr && C.consent && inputs[C.consent.field].input.checked) lr.consent(true);
      var body = new URLSearchParams(new FormData(form)), aid = lr ? lr.anonymousId() : anonymousId();
      if (aid) body.set("anonymous_id", aid);
      if (C.consent && inputs[C.consent.field].input.checked) body.set("consent_language", l);  // the text agreed to
      var key = form.getAttribute("data-lr-key") || uuid();
      form.setAttribute("data-lr-key", key);  // a retry of the same submission is the same event
      fetch(action, {
        method: "POST", body: body, mode: "cors", credentials: "omit",
        headers: { "Accept": "application/json", "Idempotency-Key": key }
      }).then(function (r) {
        if (r.status === 202) { done(); return; }
        return r.json().then(function (j) {
          var detail = j && j.detail;
          if (r.status === 422 && Array.isArray(detail)) {
            detail.forEach(function (e) { var n = String((e.loc || [])[1] || ""); show(n, local(n, e.type, e.msg)); });
          } else status.textContent = (typeof detail === "string" && r.status < 500) ? detail : M.error;
          form.removeAttribute("data-lr-key");
          var api = provider();  // a token is good for one check: ask the widget for a new one
          if (widget && api && api.reset) try { api.reset(C.captcha.kind === "turnstile" ? widget : widgetId); } catch (e) {}
        }, function () { status.textContent = M.error; });
      }, function () { status.textContent = M.error; }).then(function () {
        busy = false; button.disabled = false; button.textContent = M.submit;
      });
    });
  }

  function start() {
    var hosts = d.querySelectorAll('[data-leadrelay-form="' + C.form + '"]');
    Array.prototype.forEach.call(hosts, function (h) { if (!h.getAttribute("data-lr-ready")) { h.setAttribute("data-lr-ready", "1"); render(h); } });
  }
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", start); else start();
})(
