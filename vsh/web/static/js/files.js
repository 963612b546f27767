// The guest disk browser of a shut-off VM: filesystems, a directory tree, preview and download.
import {act, api, bytes, clear, dom, h, notice} from "./util.js";

export function filesPage(body, name) {
    const fs = h("p", {class: "muted", id: "guest-fs"}, "Reading the guest's disks…");
    const where = h("h3", {id: "guest-path"});
    const list = h("tbody", {id: "guest-files"});
    const preview = h("pre", {class: "preview", id: "guest-preview"});
    const open = async (path) => {
        const data = await api("GET", dom(name) + "/guest/files?path=" + encodeURIComponent(path));
        where.textContent = data.path;
        const up = path === "/" ? [] : [h("tr", {}, h("td", {}, h("a", {href: "#", onclick: (ev) => {
            ev.preventDefault();
            open(path.replace(/\/[^/]*\/?$/, "") || "/");
        }}, "..")), h("td", {}), h("td", {}))];
        clear(list, up, data.entries.filter((e) => e.name !== "." && e.name !== "..").map((e) => {
            const full = (path === "/" ? "" : path) + "/" + e.name;
            const isDir = (e.st_mode & 0o170000) === 0o040000;
            const link = h("a", {href: "#", class: isDir ? "dir" : "file", onclick: (ev) => {
                ev.preventDefault();
                if (isDir) open(full).catch((err) => notice(err.message));
                else show(full);
            }}, e.name + (isDir ? "/" : "") + (e.target ? " → " + e.target : ""));
            return h("tr", {"data-file": e.name}, h("td", {}, link), h("td", {class: "num"}, isDir ? "" : bytes(e.st_size)),
                h("td", {}, isDir || e.target ? "" : h("a", {href: dom(name) + "/guest/file?download=1&path=" + encodeURIComponent(full),
                                                        download: e.name}, "download")));
        }));
    };
    const show = (path) => act(null, async () => {
        const data = await api("GET", dom(name) + "/guest/file?path=" + encodeURIComponent(path));
        preview.textContent = data.binary ? "(binary file: use download)" : data.text + (data.truncated ? "\n… (truncated)" : "");
    });
    clear(body, fs, h("div", {class: "cols"},
        h("div", {}, where, h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Size", ""].map((t) => h("th", {}, t)))), list)),
        h("div", {}, h("h3", {}, "Preview"), preview)));
    api("GET", dom(name) + "/guest/filesystems").then((data) => {
        fs.textContent = "Filesystems: " + data.filesystems.map((f) => f.device + " (" + f.type + ")").join(", ") +
            "; mounted read-only: " + Object.entries(data.mountpoints).map(([mp, dev]) => mp + " ← " + dev).join(", ");
        return open("/");
    }).catch((err) => { fs.textContent = err.message; });
}
