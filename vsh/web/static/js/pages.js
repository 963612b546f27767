// The networks and storage pools pages.
import {act, api, bytes, clear, h, notice} from "./util.js";

function actions(base, item, names) {
    return names.map(([action, label]) => h("button", {"data-action": action, onclick: (ev) => act(ev.target, async () => {
        await api("POST", base + encodeURIComponent(item.name) + "/" + action);
        notice(label + ": " + item.name, "info");
        window.dispatchEvent(new HashChangeEvent("hashchange"));
    })}, label));
}

export function networksPage(main) {
    const rows = h("tbody", {id: "net-rows"});
    clear(main, h("section", {}, h("div", {class: "toolbar"}, h("h1", {}, "Networks")),
        h("table", {}, h("thead", {}, h("tr", {}, ["Name", "State", "Autostart", "Forward", "Bridge", "Address", ""].map((t) => h("th", {}, t)))), rows)));
    api("GET", "/api/networks").then((nets) => {
        clear(rows, nets.map((n) => h("tr", {"data-name": n.name},
            h("td", {}, n.name), h("td", {}, n.active ? "active" : "inactive"), h("td", {}, n.autostart ? "yes" : "no"),
            h("td", {}, n.forward || ""), h("td", {}, n.bridge || ""), h("td", {}, n.ip || ""),
            h("td", {}, actions("/api/networks/", n, n.active ? [["stop", "Stop"]] : [["start", "Start"]]),
              actions("/api/networks/", n, n.autostart ? [["noautostart", "No autostart"]] : [["autostart", "Autostart"]])))));
        if (!nets.length) rows.append(h("tr", {}, h("td", {colspan: 7, class: "empty"}, "No networks.")));
    }).catch((err) => notice(err.message));
}

export function poolsPage(main, selected) {
    const rows = h("tbody", {id: "pool-rows"});
    const vols = h("div", {id: "pool-volumes"});
    clear(main, h("section", {}, h("div", {class: "toolbar"}, h("h1", {}, "Storage pools")),
        h("table", {}, h("thead", {}, h("tr", {}, ["Name", "State", "Type", "Target", "Capacity", "Available", ""].map((t) => h("th", {}, t)))), rows),
        vols));
    api("GET", "/api/pools").then((pools) => {
        clear(rows, pools.map((p) => h("tr", {"data-name": p.name},
            h("td", {}, h("a", {href: "#/pools/" + encodeURIComponent(p.name)}, p.name)), h("td", {}, p.state),
            h("td", {}, p.type || ""), h("td", {}, p.target || ""), h("td", {class: "num"}, bytes(p.capacity)),
            h("td", {class: "num"}, bytes(p.available)),
            h("td", {}, actions("/api/pools/", p, p.active ? [["refresh", "Refresh"], ["stop", "Stop"]] : [["start", "Start"]])))));
        if (!pools.length) rows.append(h("tr", {}, h("td", {colspan: 7, class: "empty"}, "No storage pools.")));
    }).catch((err) => notice(err.message));
    if (selected) {
        api("GET", "/api/pools/" + encodeURIComponent(selected) + "/volumes").then((list) => {
            clear(vols, h("h2", {}, "Volumes of " + selected),
                h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Path", "Capacity", "Allocation"].map((t) => h("th", {}, t)))),
                  h("tbody", {id: "volume-rows"}, list.map((v) => h("tr", {"data-name": v.name}, h("td", {}, v.name), h("td", {}, v.path),
                      h("td", {class: "num"}, bytes(v.capacity)), h("td", {class: "num"}, bytes(v.allocation)))))));
        }).catch((err) => notice(err.message));
    }
}
