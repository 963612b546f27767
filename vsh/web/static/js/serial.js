// The serial console: xterm.js fed by the server's relay of the domain's console session.
import {Terminal} from "/static/vendor/xterm/lib/xterm.mjs";
import {terminalDocument} from "./csp.js";
import {dom, h, notice, wsUrl} from "./util.js";

const ENDED = 4000, REFUSED = 4001;

function xtermStyles() {
    if (!document.getElementById("xterm-css"))
        document.head.append(h("link", {rel: "stylesheet", id: "xterm-css", href: "/static/vendor/xterm/css/xterm.css"}));
}

export function serialConsole(body, name) {
    xtermStyles();
    const screen = h("div", {class: "terminal", id: "serial"});
    const status = h("span", {class: "badge", id: "serial-status"}, "connecting");
    const copy = h("button", {id: "serial-copy"}, "Copy selection");
    const paste = h("button", {id: "serial-paste"}, "Paste");
    body.replaceChildren(h("div", {class: "form-row"}, status, copy, paste,
        h("span", {class: "muted"}, "Ctrl+Shift+C / Ctrl+Shift+V also copy and paste")), screen);
    const doc = terminalDocument();
    const term = new Terminal({cols: 100, rows: 30, scrollback: 5000, cursorBlink: true,
                               fontFamily: "monospace", fontSize: 14, documentOverride: doc.document});
    doc.open(term, screen);
    screen.vshTerminal = term;
    const encoder = new TextEncoder();
    let ws = null, left = false, timer = null;
    const send = (text) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(text)); };
    term.onData(send);
    term.onBinary((data) => {
        if (ws && ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
    });
    term.attachCustomKeyEventHandler((ev) => {
        if (ev.type === "keydown" && ev.ctrlKey && ev.shiftKey && ev.code === "KeyC") {
            navigator.clipboard.writeText(term.getSelection()).catch(() => {});
            return false;
        }
        if (ev.type === "keydown" && ev.ctrlKey && ev.shiftKey && ev.code === "KeyV") {
            navigator.clipboard.readText().then((text) => term.paste(text)).catch(() => {});
            return false;
        }
        return true;
    });
    copy.addEventListener("click", () => navigator.clipboard.writeText(term.getSelection())
        .catch((err) => notice("copy: " + err.message)));
    paste.addEventListener("click", () => navigator.clipboard.readText().then((text) => { term.paste(text); term.focus(); })
        .catch((err) => notice("paste: " + err.message)));
    const connect = () => {
        timer = null;
        ws = new WebSocket(wsUrl(dom(name) + "/serial"));
        ws.binaryType = "arraybuffer";
        ws.onopen = () => { status.textContent = "connected"; status.className = "badge on"; term.focus(); };
        ws.onmessage = (ev) => {
            if (typeof ev.data === "string") {
                const msg = JSON.parse(ev.data);
                if (msg.error) status.textContent = msg.error;
            } else {
                term.write(new Uint8Array(ev.data));
            }
        };
        ws.onclose = (ev) => {
            if (left) return;
            status.className = "badge off";
            if (ev.code === ENDED) status.textContent = "the domain stopped; reconnecting when it runs";
            else if (ev.code !== REFUSED) status.textContent = "disconnected; reconnecting";
            timer = setTimeout(connect, 2000);
        };
    };
    connect();
    return () => {
        left = true;
        if (timer) clearTimeout(timer);
        if (ws) ws.close();
        term.dispose();
        doc.dispose();
    };
}
