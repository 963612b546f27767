// The VM page's disks and NICs: lists with detach buttons, forms to attach.
import {act, api, bytes, clear, dom, h, notice} from "./util.js";

export function devicesPage(body, name) {
    const disks = h("tbody", {id: "disk-rows"});
    const nics = h("tbody", {id: "nic-rows"});
    const load = async () => {
        const data = await api("GET", dom(name) + "/devices");
        const addrs = new Map(data.addresses.map((a) => [a.mac, a.addresses.map((x) => x.address + "/" + x.prefix).join(" ")]));
        clear(disks, data.disks.map((d) => {
            const size = h("input", {type: "text", class: "resize-size", placeholder: "20G, 512M (bare: GiB)"});
            const resize = d.source && d.device === "disk" ? [size, h("button", {class: "resize", onclick: (ev) => act(ev.target, async () => {
                await api("POST", dom(name) + "/devices/disks/" + encodeURIComponent(d.target) + "/resize", {size: size.value});
                notice("disk " + d.target + " resized", "info");
                await load();
            })}, "Resize")] : [];
            return h("tr", {"data-target": d.target},
                h("td", {}, d.target), h("td", {}, d.device || ""), h("td", {}, d.bus || ""), h("td", {}, d.source || "-"),
                h("td", {class: "capacity"}, d.capacity ? bytes(d.capacity) : ""),
                h("td", {}, ...resize, h("button", {class: "detach", onclick: (ev) => act(ev.target, async () => {
                    if (!confirm("Detach disk " + d.target + " from " + name + "?")) return;
                    await api("DELETE", dom(name) + "/devices/disks/" + encodeURIComponent(d.target));
                    await load();
                })}, "Detach")));
        }));
        clear(nics, data.interfaces.map((n) => h("tr", {"data-mac": n.mac},
            h("td", {}, n.mac || ""), h("td", {}, n.type || ""), h("td", {}, n.source || ""), h("td", {}, n.model || ""),
            h("td", {}, addrs.get(n.mac) || ""),
            h("td", {}, h("button", {class: "detach", onclick: (ev) => act(ev.target, async () => {
                if (!confirm("Detach interface " + n.mac + " from " + name + "?")) return;
                await api("DELETE", dom(name) + "/devices/interfaces/" + encodeURIComponent(n.mac));
                await load();
            })}, "Detach")))));
    };
    const field = (id, placeholder) => h("input", {type: "text", id, placeholder});
    const dsrc = field("disk-source", "/path/to/image.qcow2"), dtgt = field("disk-target", "vdb");
    const dfmt = h("select", {id: "disk-format"}, ["qcow2", "raw"].map((f) => h("option", {}, f)));
    const ntype = h("select", {id: "nic-type"}, ["user", "network", "bridge"].map((f) => h("option", {}, f)));
    const nsrc = field("nic-source", "network or bridge name");
    clear(body,
        h("h2", {}, "Disks"),
        h("table", {}, h("thead", {}, h("tr", {}, ["Target", "Device", "Bus", "Source", "Capacity", ""].map((t) => h("th", {}, t)))), disks),
        h("div", {class: "form-row"}, dsrc, dtgt, dfmt, h("button", {id: "disk-attach", onclick: (ev) => act(ev.target, async () => {
            await api("POST", dom(name) + "/devices/disks", {source: dsrc.value, target: dtgt.value, format: dfmt.value});
            notice("disk attached", "info");
            await load();
        })}, "Attach disk")),
        h("h2", {}, "Network interfaces"),
        h("table", {}, h("thead", {}, h("tr", {}, ["MAC", "Type", "Source", "Model", "Addresses", ""].map((t) => h("th", {}, t)))), nics),
        h("div", {class: "form-row"}, ntype, nsrc, h("button", {id: "nic-attach", onclick: (ev) => act(ev.target, async () => {
            await api("POST", dom(name) + "/devices/interfaces", {type: ntype.value, source: nsrc.value});
            notice("interface attached", "info");
            await load();
        })}, "Attach interface")));
    load().catch((err) => notice(err.message));
}
