// Create VM: virt-install's choices as a form, planned and created by the server's installer.
import {act, api, clear, h, notice} from "./util.js";

export function createPage(main) {
    const f = (id, placeholder, type) => h("input", {type: type || "text", id, name: id, placeholder});
    const name = f("c-name", "vm1"), memory = f("c-memory", "1024 (MiB)"), vcpus = f("c-vcpus", "1");
    const disk = f("c-disk", "size=8 or path=/var/lib/images/disk.qcow2"), cdrom = f("c-cdrom", "/path/to/install.iso");
    const boot = f("c-boot", "kernel=/path/vmlinuz,initrd=/path/initrd,kernel_args=console=ttyS0");
    const network = f("c-network", "user (default), network=default, bridge=br0");
    const importDisk = h("input", {type: "checkbox", id: "c-import"});
    const user = f("c-user", "root (or a new account with sudo rights)");
    const password = h("input", {type: "password", id: "c-password", autocomplete: "new-password"});
    const generate = h("input", {type: "checkbox", id: "c-password-generate"});
    const sshKey = h("textarea", {id: "c-ssh-key", rows: 2, placeholder: "ssh-ed25519 AAAA… (public keys, one a line)"});
    const variant = h("select", {id: "c-os"}, h("option", {value: ""}, "generic"));
    const out = h("pre", {class: "preview", id: "create-output"});
    const options = () => ({
        name: name.value, memory: memory.value, vcpus: vcpus.value, cdrom: cdrom.value, boot: boot.value,
        os_variant: variant.value, disks: disk.value ? [disk.value] : [], networks: network.value ? [network.value] : [],
        import: importDisk.checked, user: user.value, password: password.value, ssh_keys: sshKey.value,
        generate_password: generate.checked,
    });
    const create = (run) => async (ev) => act(ev.target, async () => {
        const made = await api("POST", "/api/install", {...options(), run});
        out.textContent = "created " + made.name + "\n" + made.created.join("\n") +
            (made.root_password ? "\npassword for the first boot: " + made.root_password : "");
        // a generated password is shown nowhere else: it stays until the next notice
        notice("created " + made.name + (made.root_password ? "; password for the first boot: " + made.root_password : ""),
               made.root_password ? "keep" : "info");
        location.hash = "#/vm/" + encodeURIComponent(made.name) + "/" + (run ? "console" : "xml");
    });
    const row = (label, input) => [h("label", {for: input.id}, label), input];
    clear(main, h("section", {}, h("div", {class: "toolbar"}, h("h1", {}, "Create a virtual machine")),
        h("form", {class: "create", onsubmit: (ev) => ev.preventDefault()},
            row("Name", name), row("Operating system", variant), row("Memory (MiB)", memory), row("vCPUs", vcpus),
            row("Disk", disk), row("Import the disk as is", importDisk), row("Install ISO", cdrom),
            row("Kernel boot", boot), row("Network", network),
            row("cloud-init: user", user), row("cloud-init: password", password),
            row("cloud-init: generate a password", generate), row("cloud-init: ssh keys", sshKey),
            h("span", {}), h("div", {},
                h("button", {type: "button", id: "c-plan", onclick: (ev) => act(ev.target, async () => {
                    const plan = await api("POST", "/api/install/plan", options());
                    out.textContent = plan.xml + "\nwould create:\n" + plan.would_create.join("\n");
                })}, "Show the XML"),
                h("button", {type: "button", id: "c-create-run", onclick: create(true)}, "Create and run"),
                h("button", {type: "button", id: "c-create-edit", onclick: create(false)}, "Create and edit"))),
        out));
    api("GET", "/api/install/os-variants").then((list) => {
        variant.append(...list.map((v) => h("option", {value: v.name}, v.label || v.name)));
    }).catch((err) => notice(err.message));
    return undefined;
}
