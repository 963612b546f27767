// Small helpers of the page: DOM building (text only, never HTML), the JSON API, formatting.

// h("td", {class: "x", onclick: fn}, "text", child...): children are nodes or text (set as text).
export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
        if (value === undefined || value === null || value === false) continue;
        if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
        else if (key === "class") el.className = value;
        else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
        if (child === undefined || child === null || child === false) continue;
        el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
}

export function clear(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
    return el;
}

function cookie(name) {
    for (const part of document.cookie.split(";")) {
        const [key, ...rest] = part.trim().split("=");
        if (key === name) return rest.join("=");
    }
    return "";
}

export function csrfToken() {
    return cookie("vsh_csrf_" + location.port) || cookie("vsh_csrf_80");
}

export class ApiError extends Error {}

export async function api(method, path, body, raw) {
    const init = {method, headers: {}, credentials: "same-origin"};
    if (method !== "GET") init.headers["X-VSH-CSRF"] = csrfToken();
    if (body !== undefined) {
        if (raw) {
            init.body = body;
            init.headers["Content-Type"] = "application/xml";
        } else {
            init.body = JSON.stringify(body);
            init.headers["Content-Type"] = "application/json";
        }
    }
    const resp = await fetch(path, init);
    const type = resp.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await resp.json() : await resp.text();
    if (!resp.ok) throw new ApiError(typeof data === "object" && data.error ? data.error : String(data));
    return data;
}

export function dom(name) {
    return "/api/domains/" + encodeURIComponent(name);
}

export function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

export function kib(value) {
    if (value === null || value === undefined) return "";
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = Number(value), u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return (Number.isInteger(v) ? v : v.toFixed(1)) + " " + units[u];
}

export function bytes(value) {
    if (value === null || value === undefined) return "";
    return value < 1024 ? value + " B" : kib(value / 1024);
}

export function notice(text, kind) {
    const el = document.getElementById("notice");
    el.textContent = text;
    el.className = kind || "error";
    el.hidden = !text;
    if (text && kind === "info") setTimeout(() => { if (el.textContent === text) el.hidden = true; }, 4000);
}

// Leaving a page drops its notice, except one kept ("keep": a password shown nowhere else),
// which stays until the next notice.
export function leaveNotice() {
    if (document.getElementById("notice").className !== "keep") notice("");
}

// Run an API call from a button: disable it meanwhile, show the error if any.
export async function act(button, fn) {
    if (button) button.disabled = true;
    try {
        notice("");
        return await fn();
    } catch (err) {
        notice(err.message || String(err));
        return undefined;
    } finally {
        if (button) button.disabled = false;
    }
}
