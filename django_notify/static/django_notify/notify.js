/*
 * django_notify browser client: Web Push subscription and a live unread badge.
 * An ES module with no build step and no dependencies.
 *
 *   import { createNotifyClient } from "/static/django_notify/notify.js";
 *   const client = createNotifyClient({ baseUrl: "/api/notifications/" });
 *   client.on("unread-count", ({ count }) => console.log(count));
 *   client.startUnreadPolling();
 *   await client.subscribe();   // from a click: browsers ask permission only then
 *
 * Events: "unread-count" {count}, "subscribed" {id}, "unsubscribed" {},
 * "permission-denied" {}, "error" (an Error). Every method that fails rejects with
 * an Error whose message says what went wrong, and emits it as "error" too.
 */

const BADGE_SELECTOR = "[data-notify-badge]";

/** Options: baseUrl (the API prefix), serviceWorkerUrl, scope, csrfToken, csrfCookieName. */
export function createNotifyClient(options = {}) {
  const baseUrl = new URL(options.baseUrl || "/api/notifications/", document.baseURI);
  const scope = options.scope || "/";
  const csrfCookieName = options.csrfCookieName || "csrftoken";
  const listeners = new Map();
  const polling = { timer: null, etag: null, failures: 0, interval: 30000, running: false, inFlight: null };
  let unreadCount = Number.isInteger(options.unreadCount) ? options.unreadCount : null;

  // -- events --------------------------------------------------------------------

  function on(name, listener) {
    if (!listeners.has(name)) listeners.set(name, new Set());
    listeners.get(name).add(listener);
    return () => off(name, listener);
  }

  function off(name, listener) {
    const set = listeners.get(name);
    if (set) set.delete(listener);
  }

  function emit(name, detail) {
    for (const listener of [...(listeners.get(name) || [])]) {
      try {
        listener(detail);
      } catch (error) {
        console.error(error); // One listener's bug must not stop the others.
      }
    }
  }

  /** Emit `error` and return it, for `throw fail(...)`. */
  function fail(message, extra = {}) {
    const error = Object.assign(new Error(message), extra);
    emit("error", error);
    return error;
  }

  // -- HTTP ----------------------------------------------------------------------

  function csrfToken() {
    if (options.csrfToken) return options.csrfToken;
    const prefix = `${csrfCookieName}=`;
    const cookie = document.cookie.split("; ").find((part) => part.startsWith(prefix));
    return cookie ? decodeURIComponent(cookie.slice(prefix.length)) : "";
  }

  /** "field: message; other: message" from a DRF error body. */
  function describe(body) {
    if (!body || typeof body !== "object") return "";
    if (typeof body.detail === "string") return body.detail;
    const parts = [];
    const walk = (value, path) => {
      if (Array.isArray(value) && value.every((item) => typeof item === "string")) {
        parts.push(`${path}: ${value.join(" ")}`);
      } else if (value && typeof value === "object") {
        for (const [key, inner] of Object.entries(value)) walk(inner, path ? `${path}.${key}` : key);
      } else if (typeof value === "string") {
        parts.push(path ? `${path}: ${value}` : value);
      }
    };
    walk(body, "");
    return parts.join("; ");
  }

  /** JSON of a request to the API; `tolerate`: statuses that resolve null instead of failing. */
  async function request(method, path, body, { tolerate = [] } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = csrfToken();
    }
    let response;
    try {
      response = await fetch(new URL(path, baseUrl), {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw fail(`${method} ${path} failed: the server could not be reached (${error.message}).`, { cause: error });
    }
    const data = await response.json().catch(() => null);
    if (tolerate.includes(response.status)) return null;
    if (!response.ok) {
      const reason = describe(data) || response.statusText || "no details";
      const message = `${method} ${path} failed with ${response.status}: ${reason}`;
      throw fail(message, { status: response.status, body: data });
    }
    return data;
  }

  // -- support and permission ------------------------------------------------------

  function isSupported() {
    return (
      window.isSecureContext === true &&
      "serviceWorker" in navigator &&
      "PushManager" in window &&
      "Notification" in window
    );
  }

  /** "granted", "denied", "default", or "unsupported". */
  function permission() {
    return isSupported() ? Notification.permission : "unsupported";
  }

  function requireSupport() {
    if (!isSupported()) {
      throw fail(
        "Web Push is not supported here: it needs service workers, the Push API and notifications, " +
          "on a secure page (https, or http://localhost).",
      );
    }
  }

  // -- service worker and subscription -------------------------------------------------

  function serviceWorkerUrl() {
    const url = new URL(options.serviceWorkerUrl || "sw.js", baseUrl);
    // The worker finds the API beside itself, or from this parameter.
    if (url.pathname !== new URL("sw.js", baseUrl).pathname && !url.searchParams.has("api")) {
      url.searchParams.set("api", baseUrl.pathname);
    }
    return url.href;
  }

  let registering = null;

  /** The service worker registration, registered on first use and active. */
  async function register() {
    requireSupport();
    registering ||= navigator.serviceWorker
      .register(serviceWorkerUrl(), { scope })
      .then(activated)
      .catch((error) => {
        registering = null;
        throw fail(`The service worker could not be registered: ${error.message}`, { cause: error });
      });
    return registering;
  }

  function activated(registration) {
    const worker = registration.installing || registration.waiting;
    if (registration.active || !worker) return registration;
    return new Promise((resolve) => {
      worker.addEventListener("statechange", () => {
        if (worker.state === "activated") resolve(registration);
      });
    });
  }

  async function existingSubscription() {
    if (!isSupported()) return null;
    const registration = await navigator.serviceWorker.getRegistration(scope);
    return registration ? registration.pushManager.getSubscription() : null;
  }

  function decodeKey(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(base64url.length / 4) * 4, "=");
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  }

  function sameKey(subscription, key) {
    const current = subscription.options && subscription.options.applicationServerKey;
    if (!current) return false;
    const bytes = new Uint8Array(current);
    return bytes.length === key.length && bytes.every((byte, i) => byte === key[i]);
  }

  /** Ask permission, subscribe this browser and store it on the server; resolves {id}. */
  async function subscribe({ preferences } = {}) {
    requireSupport();
    const answer = await Notification.requestPermission();
    if (answer !== "granted") {
      emit("permission-denied", {});
      throw fail(
        answer === "denied"
          ? "Notifications are blocked for this site: allow them in the browser's site settings, then try again."
          : "Notification permission was not granted: the prompt was dismissed.",
        { permission: answer },
      );
    }
    const { public_key: publicKey } = await request("GET", "push/public-key/");
    const key = decodeKey(publicKey);
    const registration = await register();
    let subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameKey(subscription, key)) {
      // Made with another server key (a rotation): it cannot receive our pushes.
      await subscription.unsubscribe();
      subscription = null;
    }
    if (!subscription) {
      try {
        subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
      } catch (error) {
        throw fail(`The browser could not subscribe to push messages: ${error.message}`, { cause: error });
      }
    }
    const body = { subscription: subscription.toJSON() };
    if (preferences !== undefined) body.preferences = preferences;
    const { id } = await request("POST", "push/subscribe/", body);
    emit("subscribed", { id });
    return { id };
  }

  /** Unsubscribe this browser here and on the server; resolves false if it was not subscribed. */
  async function unsubscribe() {
    const subscription = await existingSubscription();
    if (!subscription) return false;
    const { endpoint } = subscription;
    // The browser first: whatever the server says, no more pushes arrive here.
    await subscription.unsubscribe();
    // 404: the server had dropped it already (a push service answered 410).
    await request("POST", "push/unsubscribe/", { endpoint }, { tolerate: [404] });
    emit("unsubscribed", {});
    return true;
  }

  async function isSubscribed() {
    return (await existingSubscription()) !== null;
  }

  // -- unread count ------------------------------------------------------------------

  function updateBadges(count) {
    for (const badge of document.querySelectorAll(BADGE_SELECTOR)) {
      const max = Number.parseInt(badge.dataset.notifyMax || "", 10);
      badge.textContent = max > 0 && count > max ? `${max}+` : String(count);
      badge.dataset.count = String(count);
      badge.hidden = count === 0;
    }
  }

  /** GET unread-count/ once (with If-None-Match); resolves the count. */
  async function refreshUnreadCount() {
    const headers = { Accept: "application/json" };
    if (polling.etag) headers["If-None-Match"] = polling.etag;
    let response;
    try {
      response = await fetch(new URL("unread-count/", baseUrl), {
        headers,
        credentials: "same-origin",
        cache: "no-store", // If-None-Match is ours: the HTTP cache must not answer for the server
      });
    } catch (error) {
      throw fail(`GET unread-count/ failed: the server could not be reached (${error.message}).`, { cause: error });
    }
    if (response.status === 304) return unreadCount;
    if (!response.ok) {
      throw fail(`GET unread-count/ failed with ${response.status}.`, { status: response.status });
    }
    const { count } = await response.json();
    polling.etag = response.headers.get("ETag");
    if (count !== unreadCount) {
      unreadCount = count;
      updateBadges(count);
      emit("unread-count", { count });
    }
    return count;
  }

  function schedule() {
    clearTimeout(polling.timer);
    if (!polling.running) return;
    // Slower in a background tab, and after each failure in a row (capped).
    const factor = (document.visibilityState === "hidden" ? 4 : 1) * 2 ** Math.min(polling.failures, 5);
    polling.timer = setTimeout(poll, Math.min(polling.interval * factor, 10 * 60 * 1000));
  }

  async function poll() {
    if (polling.inFlight) return;
    polling.inFlight = refreshUnreadCount().then(
      () => {
        polling.failures = 0;
      },
      (error) => {
        polling.failures += 1;
        // Logged out, or not allowed: asking again will not help.
        if (error.status === 401 || error.status === 403) stopPolling();
      },
    );
    await polling.inFlight;
    polling.inFlight = null;
    schedule();
  }

  function onVisibilityChange() {
    if (polling.running && document.visibilityState === "visible") poll();
  }

  /** Poll unread-count/ every `interval` ms (default 30 s), at once the first time. */
  function startUnreadPolling({ interval = 30000 } = {}) {
    polling.interval = Math.max(1000, interval);
    if (polling.running) return;
    polling.running = true;
    polling.failures = 0;
    document.addEventListener("visibilitychange", onVisibilityChange);
    poll();
  }

  function stopPolling() {
    polling.running = false;
    clearTimeout(polling.timer);
    document.removeEventListener("visibilitychange", onVisibilityChange);
  }

  /** Stop polling. Listeners stay; call start again to resume. */
  function stop() {
    stopPolling();
  }

  return {
    isSupported,
    permission,
    register,
    subscribe,
    unsubscribe,
    isSubscribed,
    refreshUnreadCount,
    startUnreadPolling,
    stop,
    on,
    off,
    get unreadCount() {
      return unreadCount;
    },
    get polling() {
      return polling.running;
    },
  };
}

/**
 * Create the client from the JSON config `{% notify_client %}` renders, expose it on
 * `window.djangoNotify`, and keep the page's `data-notify-badge` elements live: each
 * badge's `data-notify-poll` (seconds; "0": no polling) or the config's `pollInterval`.
 * Sends `django-notify:ready` on `document` with the client as `detail`.
 */
export function autoInit(configElement) {
  const config = JSON.parse(configElement.textContent);
  const badges = [...document.querySelectorAll(BADGE_SELECTOR)];
  const first = badges.length ? Number.parseInt(badges[0].dataset.count, 10) : NaN;
  const client = createNotifyClient({ ...config, unreadCount: Number.isInteger(first) ? first : undefined });
  window.djangoNotify = client;
  const polled = badges.filter((badge) => badge.dataset.notifyPoll !== "0");
  if (polled.length) {
    const own = polled.map((badge) => Number.parseFloat(badge.dataset.notifyPoll)).filter((s) => s > 0);
    client.startUnreadPolling({ interval: 1000 * (own.length ? Math.min(...own) : config.pollInterval || 30) });
  }
  document.dispatchEvent(new CustomEvent("django-notify:ready", { detail: client }));
  return client;
}
