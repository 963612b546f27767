// Usage graphs over time: CPU, memory, disk and network, drawn on canvases by this small code.
import {onLive} from "./app.js";
import {api, bytes, clear, dom, h, kib, notice} from "./util.js";

const SERIES = [
    {id: "cpu", title: "CPU", keys: [["cpu", "#1f77b4"]], fmt: (v) => v.toFixed(1) + " %", max: 100},
    {id: "memory", title: "Memory", keys: [["memory_kib", "#2ca02c"]], fmt: (v) => kib(v)},
    {id: "disk", title: "Disk read / write per second", keys: [["disk_rd", "#9467bd"], ["disk_wr", "#d62728"]], fmt: (v) => bytes(v) + "/s"},
    {id: "net", title: "Network in / out per second", keys: [["net_rx", "#17becf"], ["net_tx", "#ff7f0e"]], fmt: (v) => bytes(v) + "/s"},
];
const WINDOW = 300;     // seconds shown

function draw(canvas, points, spec, label) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth * ratio, height = canvas.clientHeight * ratio;
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const now = points.length ? points[points.length - 1].t : Date.now() / 1000;
    let top = spec.max || 0;
    for (const p of points) for (const [key] of spec.keys) if (p[key] !== null && p[key] > top) top = p[key];
    top = top || 1;
    ctx.strokeStyle = "#e1e4e8";
    ctx.lineWidth = ratio;
    for (let i = 1; i < 4; i++) {
        const y = Math.round(height * i / 4) + 0.5;
        ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(width, y); ctx.stroke();
    }
    for (const [key, color] of spec.keys) {
        ctx.strokeStyle = color;
        ctx.lineWidth = 2 * ratio;
        ctx.beginPath();
        let started = false;
        for (const p of points) {
            if (p[key] === null || p[key] === undefined) { started = false; continue; }
            const x = width - (now - p.t) / WINDOW * width;
            const y = height - p[key] / top * (height - 4 * ratio) - 2 * ratio;
            if (started) ctx.lineTo(x, y); else ctx.moveTo(x, y);
            started = true;
        }
        ctx.stroke();
    }
    const last = points.length ? points[points.length - 1] : null;
    label.textContent = last ? spec.keys.map(([key]) => last[key] === null ? "–" : spec.fmt(last[key])).join(" / ") +
        "  (max " + spec.fmt(top) + ")" : "no samples: the VM is not running";
}

export async function usagePage(body, name) {
    let points = [];
    const views = SERIES.map((spec) => {
        const canvas = h("canvas", {class: "graph", id: "graph-" + spec.id});
        const label = h("span", {class: "muted", id: "graph-" + spec.id + "-label"});
        return {spec, canvas, label, box: h("div", {}, h("h3", {}, spec.title + " ", label), canvas)};
    });
    clear(body, h("div", {class: "graphs"}, views.map((v) => v.box)));
    const redraw = () => { for (const v of views) draw(v.canvas, points, v.spec, v.label); };
    try {
        points = await api("GET", dom(name) + "/usage");
    } catch (err) {
        notice(err.message);
    }
    redraw();
    const resize = () => redraw();
    window.addEventListener("resize", resize);
    const off = onLive((msg) => {
        if (msg.type !== "usage" || msg.name !== name) return;
        points.push(msg.point);
        const cutoff = msg.point.t - WINDOW;
        while (points.length && points[0].t < cutoff) points.shift();
        redraw();
    });
    return () => { off(); window.removeEventListener("resize", resize); };
}
