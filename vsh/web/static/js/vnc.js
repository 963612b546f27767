// The graphical console: noVNC over the server's relay to QEMU's VNC unix socket.
import RFB from "/static/vendor/novnc/core/rfb.js";
import {dom, h, wsUrl} from "./util.js";

export function graphicalConsole(body, name) {
    const screen = h("div", {class: "vnc-screen", id: "vnc"});
    const status = h("span", {class: "badge", id: "vnc-status"}, "connecting");
    const scale = h("input", {type: "checkbox", id: "vnc-scale", checked: true});
    const cad = h("button", {id: "vnc-cad"}, "Send Ctrl-Alt-Del");
    const full = h("button", {id: "vnc-fullscreen"}, "Full screen");
    body.replaceChildren(h("div", {class: "form-row"}, status, h("label", {}, scale, " scale to window"), cad, full), screen);
    let rfb = null, left = false, timer = null;
    const connect = () => {
        timer = null;
        rfb = new RFB(screen, wsUrl(dom(name) + "/vnc"), {wsProtocols: ["binary"]});
        rfb.scaleViewport = scale.checked;
        rfb.resizeSession = false;
        rfb.addEventListener("connect", () => { status.textContent = "connected"; status.className = "badge on"; });
        rfb.addEventListener("disconnect", () => {
            if (left) return;
            status.textContent = "disconnected; reconnecting";
            status.className = "badge off";
            timer = setTimeout(connect, 2000);
        });
    };
    scale.addEventListener("change", () => { if (rfb) rfb.scaleViewport = scale.checked; });
    cad.addEventListener("click", () => { if (rfb) rfb.sendCtrlAltDel(); });
    full.addEventListener("click", () => screen.requestFullscreen().catch(() => {}));
    connect();
    return () => {
        left = true;
        if (timer) clearTimeout(timer);
        if (rfb) rfb.disconnect();
    };
}
