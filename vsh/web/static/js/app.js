// The page: a router over location.hash, the live connection, and the VM list.
import {act, api, clear, dom, h, kib, leaveNotice, notice, wsUrl} from "./util.js";

const main = document.getElementById("main");
const listeners = new Set();        // pages that want live messages
let rows = [];
let liveSocket = null;
let liveRows = false;              // rows came from the live connection (newer than any fetch)
// the list, already on its way (index.html preloads it); every page takes it, the list draws it
const firstList = api("GET", "/api/domains");
firstList.catch(() => {});          // the list page shows the error

export function onLive(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
}

export function currentRows() {
    return rows;
}

function connectLive() {
    const badge = document.getElementById("live");
    const ws = new WebSocket(wsUrl("/api/events"));
    liveSocket = ws;
    ws.onopen = () => { badge.textContent = "live"; badge.className = "badge on"; };
    ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        if (msg.type === "domains") { rows = msg.domains; liveRows = true; }
        for (const fn of listeners) fn(msg);
    };
    ws.onclose = () => {
        badge.textContent = "reconnecting";
        badge.className = "badge off";
        setTimeout(connectLive, 2000);
    };
}

// ---- the VM list --------------------------------------------------------------------------
const STATE_ACTIONS = {
    "running": ["shutdown", "reboot", "destroy", "suspend"],
    "paused": ["resume", "destroy"],
    "shut off": ["start", "delete"],
    "crashed": ["destroy", "start"],
    "pmsuspended": ["destroy"],
};
const LABELS = {start: "Start", shutdown: "Shut down", reboot: "Reboot", destroy: "Force off",
                suspend: "Pause", resume: "Resume", delete: "Delete"};

export async function domainAction(name, action, button) {
    if (action === "delete") return deleteDialog(name);
    if (action === "destroy" && !confirm("Force off " + name + "? The guest gets no chance to shut down."))
        return undefined;
    return act(button, async () => {
        await api("POST", dom(name) + "/action/" + action);
        notice(LABELS[action] + ": " + name, "info");
    });
}

function deleteDialog(name) {
    const storage = h("input", {type: "checkbox", id: "delete-storage"});
    const dialog = h("dialog", {class: "dialog"},
        h("p", {}, "Delete the definition of ", h("b", {}, name), "?"),
        h("label", {}, storage, " also delete its storage (volumes no other VM uses)"),
        h("div", {class: "buttons"},
            h("button", {onclick: () => dialog.close()}, "Cancel"),
            h("button", {class: "danger", id: "delete-confirm", onclick: async (ev) => {
                await act(ev.target, () => api("DELETE", dom(name) + (storage.checked ? "?storage=1" : "")));
                dialog.close();
                if (location.hash.startsWith("#/vm/")) location.hash = "#/";
            }}, "Delete")));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
}

export function actionButtons(row) {
    return (STATE_ACTIONS[row.state] || ["destroy"]).map((action) =>
        h("button", {class: "act act-" + action, "data-action": action,
                     onclick: (ev) => { ev.stopPropagation(); domainAction(row.name, action, ev.target); }},
          LABELS[action]));
}

function cpuText(r) {
    return r.cpu === null || r.cpu === undefined ? "" : r.cpu.toFixed(1) + " %";
}

// One row per domain, kept across updates: only cells whose text changed are touched. Rows are
// clones of one template (cheaper than building each cell).
// elementtiming: the browser reports when a name is painted (scripts/bench: first paint)
const ROW = h("tr", {},
    h("td", {class: "name", elementtiming: "vsh-vm-name"}, h("a", {})),
    h("td", {class: "state"}), h("td", {class: "num"}), h("td", {class: "num"}), h("td", {class: "num cpu"}),
    h("td", {class: "actions"}));

function makeRow(r) {
    const tr = ROW.cloneNode(true);
    tr.dataset.name = r.name;
    const link = tr.cells[0].firstChild;
    link.href = "#/vm/" + encodeURIComponent(r.name);
    link.textContent = r.name;
    tr.vshState = null;
    return tr;
}

function updateRow(tr, r) {
    const cells = tr.cells;
    const texts = [null, r.state, String(r.vcpus ?? ""), kib(r.memory_kib), cpuText(r)];
    for (let i = 1; i < texts.length; i++) if (cells[i].textContent !== texts[i]) cells[i].textContent = texts[i];
    if (tr.vshState !== r.state) {
        tr.className = "state-" + r.state.replace(" ", "-");
        clear(cells[5], actionButtons(r));
        tr.vshState = r.state;
    }
}

let listFetched = false;

function listPage() {
    const filter = h("input", {type: "search", id: "filter", placeholder: "Filter by name or state"});
    const body = h("tbody", {id: "vm-rows"});
    const count = h("span", {class: "count"});
    const empty = h("tr", {}, h("td", {colspan: 6, class: "empty"}, "No virtual machines."));
    const byName = new Map();
    let drawn = null;
    const draw = () => {
        const words = filter.value.trim().toLowerCase();
        const shown = rows.filter((r) => !words || r.name.toLowerCase().includes(words) || r.state.includes(words));
        const wanted = [];
        for (const r of shown) {
            let tr = byName.get(r.name);
            if (!tr) { tr = makeRow(r); byName.set(r.name, tr); }
            updateRow(tr, r);
            wanted.push(tr);
        }
        for (const name of [...byName.keys()]) if (!rows.some((r) => r.name === name)) byName.delete(name);
        const order = wanted.map((tr) => tr.dataset.name).join("\n");
        if (order !== drawn) {
            clear(body, wanted.length ? wanted : (rows.length ? [] : [empty]));
            drawn = order;
            // scripts/bench: when the rows are in the page (their names' paint is reported by
            // the browser, elementtiming)
            if (wanted.length && !performance.getEntriesByName("vsh-list-drawn").length) performance.mark("vsh-list-drawn");
        }
        count.textContent = shown.length + " of " + rows.length;
    };
    filter.addEventListener("input", draw);
    clear(main, h("section", {class: "list"},
        h("div", {class: "toolbar"}, h("h1", {}, "Virtual machines"), count, filter),
        h("table", {class: "vms"},
            h("thead", {}, h("tr", {}, ["Name", "State", "vCPUs", "Memory", "CPU", ""].map((t) => h("th", {}, t)))),
            body)));
    if (rows.length) draw();
    (listFetched ? api("GET", "/api/domains") : firstList).then((data) => {
        listFetched = true;
        if (!liveRows) rows = data;
        draw();
    }).catch((err) => notice(err.message));
    return onLive((msg) => { if (msg.type === "domains") draw(); });
}

// ---- routing ------------------------------------------------------------------------------
let leave = null;

async function route() {
    if (leave) leave();
    leave = null;
    leaveNotice();
    const hash = location.hash || "#/";
    const parts = hash.slice(2).split("/").map(decodeURIComponent);
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.getAttribute("href") === "#/" + parts[0]);
    if (parts[0] === "vm" && parts[1]) {
        const {vmPage} = await import("./vm.js");
        leave = vmPage(main, parts[1], parts[2] || "overview");
    } else if (parts[0] === "networks" || parts[0] === "pools") {
        const {networksPage, poolsPage} = await import("./pages.js");
        leave = parts[0] === "networks" ? networksPage(main) : poolsPage(main, parts[1]);
    } else if (parts[0] === "create") {
        const {createPage} = await import("./create.js");
        leave = createPage(main);
    } else {
        leave = listPage();
    }
}

window.addEventListener("hashchange", route);
api("GET", "/api/host").then((info) => { document.getElementById("uri").textContent = info.uri + " on " + info.hostname; })
    .catch(() => {});
connectLive();
route();
