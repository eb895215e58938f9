/*
 * django_notify service worker: shows Web Push notifications and reports what
 * the user did with them.
 *
 * Serve it from the URLconf (`{% url "django_notify:service-worker" %}`, sent with
 * `Service-Worker-Allowed: /`) and register it with scope "/". No build step, no
 * dependencies.
 *
 *   push                    show the notification, report "delivered"
 *   notificationclick       report "clicked" (or "action"), focus or open its URL
 *   notificationclose       report "dismissed"
 *   pushsubscriptionchange  subscribe again, tell the server the old endpoint
 *
 * Events go to the `events` URL the push message carries (absolute, or a path on
 * this site), authenticated by its signed `token` alone: no cookies are sent. The REST API (for
 * pushsubscriptionchange) is found beside this script, or at its `api` query
 * parameter when the script is served from elsewhere.
 */
"use strict";

const FALLBACK_TITLE = "New notification";
const FALLBACK_BODY = "Open the site to see it.";
const API_BASE = new URL(new URL(self.location.href).searchParams.get("api") || "./", self.location.href);
const CSRF_COOKIE = new URL(self.location.href).searchParams.get("csrf_cookie") || "csrftoken";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("push", (event) => event.waitUntil(handlePush(event)));
self.addEventListener("notificationclick", (event) => event.waitUntil(handleClick(event)));
self.addEventListener("notificationclose", (event) => event.waitUntil(handleClose(event)));
self.addEventListener("pushsubscriptionchange", (event) => event.waitUntil(handleSubscriptionChange(event)));

// -- push ------------------------------------------------------------------------

/** The push message as an object; an empty or non-JSON push gives a generic one. */
function readMessage(data) {
  if (!data) return {};
  try {
    const message = data.json();
    if (message && typeof message === "object" && !Array.isArray(message)) return message;
  } catch (error) {
    // Not JSON: show its text rather than nothing.
  }
  let text = "";
  try {
    text = data.text().trim();
  } catch (error) {
    // Not text either.
  }
  return text ? { body: text.slice(0, 500) } : {};
}

const text = (value) => (typeof value === "string" && value ? value : undefined);

/** The options of showNotification(), taking only well-typed fields from the message. */
function notificationOptions(message) {
  const listed = Array.isArray(message.actions) ? message.actions : [];
  const actions = listed.filter((a) => a && text(a.action) && text(a.title));
  const actionUrls = {};
  for (const action of actions) if (text(action.url)) actionUrls[action.action] = action.url;
  const options = {
    body: text(message.body) || (message.title ? undefined : FALLBACK_BODY),
    icon: text(message.icon),
    badge: text(message.badge),
    image: text(message.image),
    tag: text(message.tag),
    actions: actions.map((a) => ({ action: a.action, title: a.title, icon: text(a.icon) })),
    lang: text(message.lang),
    dir: ["auto", "ltr", "rtl"].includes(message.dir) ? message.dir : undefined,
    requireInteraction: message.requireInteraction === true,
    // Chromium refuses renotify without a tag.
    renotify: message.renotify === true && Boolean(text(message.tag)),
    silent: message.silent === true,
    timestamp: typeof message.timestamp === "number" ? message.timestamp : undefined,
    data: {
      url: text(message.url) || null,
      id: message.id ?? null,
      token: text(message.token) || null,
      events: text(message.events) || null,
      actionUrls,
      data: message.data ?? null,
    },
  };
  // Chromium refuses vibration on a silent notification.
  const vibrate = [].concat(message.vibrate ?? []).filter(Number.isFinite);
  if (!options.silent && vibrate.length) options.vibrate = vibrate;
  return options;
}

async function handlePush(event) {
  const message = readMessage(event.data);
  const options = notificationOptions(message);
  const title = text(message.title) || FALLBACK_TITLE;
  try {
    await self.registration.showNotification(title, options);
  } catch (error) {
    // A bad option (an odd icon, too many actions) must not leave the push unseen:
    // browsers revoke the subscription of a site whose pushes show nothing.
    await self.registration.showNotification(title, { body: options.body, tag: options.tag, data: options.data });
  }
  await report(options.data, "delivered");
}

// -- clicks and dismissals -----------------------------------------------------------

/** POST an engagement event; never throws (reporting must not break the notification). */
async function report(data, name, action) {
  if (!data || !data.token || !data.events || !isWebUrl(data.events)) return;
  const body = { token: data.token, event: name };
  if (action) body.action = action;
  try {
    await fetch(data.events, {
      method: "POST",
      credentials: "omit",
      keepalive: true,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    // Offline or blocked: the event is lost, the notification still works.
  }
}

function isWebUrl(value) {
  try {
    const url = new URL(value, self.location.href);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch (error) {
    return false;
  }
}

/** The URL to open: relative URLs resolve against the site; only http(s) is opened. */
function targetUrl(value) {
  return value && isWebUrl(value) ? new URL(value, self.location.href) : null;
}

async function handleClick(event) {
  const notification = event.notification;
  const data = notification.data || {};
  const action = event.action || "";
  notification.close();
  const actionUrl = action && data.actionUrls ? data.actionUrls[action] : null;
  await Promise.all([
    report(data, action ? "action" : "clicked", action),
    openTarget(targetUrl(actionUrl || data.url)),
  ]);
}

async function handleClose(event) {
  await report(event.notification.data, "dismissed");
}

async function focus(client) {
  try {
    return await client.focus();
  } catch (error) {
    // Only a real click lets a worker focus a window.
    return client;
  }
}

/**
 * Focus a window already showing `url`, else navigate a window of this site to it,
 * else open a new window. Without a URL, focus any window of the site or open its root.
 */
async function openTarget(url) {
  // Only this site's windows are listed; the focused one first.
  const listed = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const windows = [...listed].sort((a, b) => Number(b.focused) - Number(a.focused));
  if (!url) {
    if (windows.length) return focus(windows[0]);
    url = new URL(self.registration.scope);
  }
  const showing = windows.find((client) => client.url === url.href);
  if (showing) return focus(showing);
  if (url.origin === self.location.origin) {
    for (const client of windows) {
      try {
        const navigated = await client.navigate(url.href);
        if (navigated) return focus(navigated);
      } catch (error) {
        // Not controlled by this worker: try the next window, or open one.
      }
    }
  }
  try {
    return await self.clients.openWindow(url.href);
  } catch (error) {
    return null; // Only a real click lets a worker open a window.
  }
}

// -- subscription renewal ----------------------------------------------------------

async function publicKey() {
  const response = await fetch(new URL("push/public-key/", API_BASE), { credentials: "same-origin" });
  if (!response.ok) throw new Error(`GET push/public-key/ answered ${response.status}`);
  const key = (await response.json()).public_key;
  const base64 = key.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(key.length / 4) * 4, "=");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** The CSRF token from the cookie, where the browser lets a worker read cookies. */
async function csrfHeaders() {
  try {
    const cookie = self.cookieStore ? await self.cookieStore.get(CSRF_COOKIE) : null;
    return cookie ? { "X-CSRFToken": cookie.value } : {};
  } catch (error) {
    return {};
  }
}

async function handleSubscriptionChange(event) {
  const old = event.oldSubscription || null;
  let subscription = event.newSubscription || null;
  if (!subscription) {
    const key = (old && old.options && old.options.applicationServerKey) || (await publicKey());
    subscription = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }
  const body = { subscription: subscription.toJSON() };
  if (old && old.endpoint) body.oldEndpoint = old.endpoint;
  // The session cookie, if any, identifies the user; the old endpoint proves the
  // row is this browser's when there is no session (see the how-to).
  const response = await fetch(new URL("push/subscribe/", API_BASE), {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", ...(await csrfHeaders()) },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`POST push/subscribe/ answered ${response.status}`);
}
