// The VM page: a header with the state and actions, then one tab at a time.
import {actionButtons, currentRows, onLive} from "./app.js";
import {act, api, clear, dom, h, kib, notice} from "./util.js";

const TABS = [["overview", "Overview"], ["console", "Serial console"], ["display", "Graphical console"],
              ["usage", "Usage"], ["snapshots", "Snapshots"], ["devices", "Disks and NICs"],
              ["xml", "XML"], ["files", "Files"]];

export function vmPage(main, name, tab) {
    const state = h("span", {class: "state", id: "vm-state"});
    const actions = h("span", {class: "actions", id: "vm-actions"});
    const body = h("div", {class: "tab-body", id: "tab-body"});
    const tabs = h("nav", {class: "tabs"}, TABS.map(([key, label]) =>
        h("a", {href: "#/vm/" + encodeURIComponent(name) + "/" + key, class: key === tab ? "current" : null,
                id: "tab-" + key}, label)));
    clear(main, h("section", {class: "vm"},
        h("div", {class: "toolbar"}, h("h1", {id: "vm-name"}, name), state, actions), tabs, body));
    let lastState = null;
    const showRow = () => {
        const row = currentRows().find((r) => r.name === name);
        if (!row) return;
        state.textContent = row.state;
        state.className = "state state-" + row.state.replace(" ", "-");
        if (row.state !== lastState) clear(actions, actionButtons(row));
        lastState = row.state;
    };
    showRow();
    const leaves = [onLive((msg) => { if (msg.type === "domains") showRow(); })];
    const open = async () => {
        const loaders = {
            overview: () => overview(body, name),
            console: async () => (await import("./serial.js")).serialConsole(body, name),
            display: async () => (await import("./vnc.js")).graphicalConsole(body, name),
            usage: async () => (await import("./graphs.js")).usagePage(body, name),
            snapshots: () => snapshots(body, name),
            devices: async () => (await import("./devices.js")).devicesPage(body, name),
            xml: () => xmlEditor(body, name),
            files: async () => (await import("./files.js")).filesPage(body, name),
        };
        const leave = await (loaders[tab] || loaders.overview)();
        if (typeof leave === "function") leaves.push(leave);
    };
    open().catch((err) => notice(err.message || String(err)));
    return () => { for (const fn of leaves) fn(); };
}

// ---- overview --------------------------------------------------------------------------------
function overview(body, name) {
    const draw = (info) => {
        const mem = h("input", {type: "number", min: 1, id: "edit-memory", value: Math.round(info.memory_kib / 1024)});
        const cpus = h("input", {type: "number", min: 1, id: "edit-vcpus", value: info.vcpus});
        const auto = h("input", {type: "checkbox", id: "edit-autostart", checked: info.autostart});
        const save = async (ev, change) => {
            const fresh = await act(ev.target, () => api("PUT", dom(name) + "/settings", change));
            if (fresh) { draw(fresh); notice("saved", "info"); }
        };
        auto.addEventListener("change", (ev) => save(ev, {autostart: auto.checked}));
        clear(body, h("dl", {class: "facts"},
            h("dt", {}, "State"), h("dd", {}, info.state + (info.reason ? " (" + info.reason + ")" : "")),
            h("dt", {}, "UUID"), h("dd", {}, info.uuid || ""),
            h("dt", {}, "Firmware"), h("dd", {id: "vm-firmware"}, (info.firmware || "") + (info.machine ? ", machine " + info.machine : "")),
            h("dt", {}, "Boot order"), h("dd", {id: "vm-boot"}, info.boot.join(", ") || "-"),
            h("dt", {}, "Autostart"), h("dd", {}, h("label", {}, auto, " start with the host")),
            h("dt", {}, "vCPUs"), h("dd", {}, cpus, h("button", {onclick: (ev) => save(ev, {vcpus: Number(cpus.value)})}, "Apply")),
            h("dt", {}, "Memory (MiB)"), h("dd", {}, mem, h("button", {id: "save-memory",
                onclick: (ev) => save(ev, {memory_kib: Number(mem.value) * 1024})}, "Apply"),
                " maximum " + kib(info.max_memory_kib)),
            h("dt", {}, "Disks"), h("dd", {}, info.disks.map((d) => d.target + " " + (d.source || "-")).join(", ") || "none"),
            h("dt", {}, "NICs"), h("dd", {}, info.interfaces.map((n) => (n.type || "") + " " + (n.source || "") + " " + (n.mac || "")).join(", ") || "none"),
            h("dt", {}, "Display"), h("dd", {}, info.graphics.map((g) => g.type + " " + (g.socket || "")).join(", ") || "-")));
    };
    api("GET", dom(name)).then(draw).catch((err) => notice(err.message));
}

// ---- snapshots -------------------------------------------------------------------------------
function snapshots(body, name) {
    const list = h("ul", {class: "tree", id: "snapshot-tree"});
    const input = h("input", {type: "text", id: "snapshot-name", placeholder: "name (default: the time)"});
    const desc = h("input", {type: "text", id: "snapshot-description", placeholder: "description"});
    const load = async () => {
        const data = await api("GET", dom(name) + "/snapshots");
        const children = new Map();
        for (const s of data.snapshots) {
            const key = s.parent || "";
            if (!children.has(key)) children.set(key, []);
            children.get(key).push(s);
        }
        const branch = (parent) => (children.get(parent) || []).map((s) => h("li", {"data-snapshot": s.name},
            h("span", {class: "snap-name"}, s.name), " ",
            h("span", {class: "muted"}, (s.state || "") + " " + (s.creation_time ? new Date(s.creation_time * 1000).toLocaleString() : "")),
            s.name === data.current ? h("span", {class: "badge on"}, "current") : null, " ",
            h("button", {class: "snap-revert", onclick: (ev) => act(ev.target, async () => {
                if (!confirm("Revert " + name + " to " + s.name + "?")) return;
                await api("POST", dom(name) + "/snapshots/" + encodeURIComponent(s.name) + "/revert");
                notice("reverted to " + s.name, "info");
                await load();
            })}, "Revert"),
            h("button", {class: "snap-delete", onclick: (ev) => act(ev.target, async () => {
                if (!confirm("Delete snapshot " + s.name + "?")) return;
                await api("DELETE", dom(name) + "/snapshots/" + encodeURIComponent(s.name));
                await load();
            })}, "Delete"),
            children.has(s.name) ? h("ul", {}, branch(s.name)) : null));
        clear(list, branch(""));
        if (!data.snapshots.length) list.append(h("li", {class: "empty"}, "No snapshots."));
    };
    clear(body, h("div", {class: "form-row"}, input, desc,
        h("button", {id: "snapshot-create", onclick: (ev) => act(ev.target, async () => {
            const made = await api("POST", dom(name) + "/snapshots", {name: input.value, description: desc.value});
            input.value = "";
            notice("snapshot " + made.name + " taken", "info");
            await load();
        })}, "Take snapshot")), list);
    load().catch((err) => notice(err.message));
}

// ---- the XML editor --------------------------------------------------------------------------
function xmlEditor(body, name) {
    const area = h("textarea", {class: "xml", id: "xml-text", spellcheck: "false"});
    const status = h("span", {class: "muted", id: "xml-status"});
    // the server parses (the browser's DOMParser reports errors in a document with inline style)
    const check = async () => {
        const got = await api("POST", "/api/xml/check", {xml: area.value});
        if (got.problem) return "not well-formed: " + got.problem;
        return got.root === "domain" ? "" : "the root element must be <domain>";
    };
    let timer = null;
    area.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(() => check().then((problem) => { status.textContent = problem || "well-formed"; })
            .catch((err) => { status.textContent = err.message; }), 300);
    });
    clear(body, h("div", {class: "form-row"},
        h("button", {id: "xml-save", onclick: (ev) => act(ev.target, async () => {
            const problem = await check();
            if (problem) throw new Error(problem);
            await api("PUT", dom(name) + "/xml", area.value, true);
            notice("definition saved (it applies at the next start)", "info");
        })}, "Validate and save"),
        h("button", {onclick: () => load()}, "Reload"), status), area);
    const load = () => api("GET", dom(name) + "/xml?inactive=1").then((text) => { area.value = text; status.textContent = ""; })
        .catch((err) => notice(err.message));
    load();
}
