"""vsh itself: help, quit, echo, cd, pwd, connect, uri, version, hostname, completion."""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, VshError
from vsh.core.output import Lines, Text
from vsh.registry import Opt, QuitShell, command, help_command, help_group, help_overview, registry


@command("help", group="virsh", summary="print help",
         opts=[Opt("command", kind="command", positional=True, help="command or command group")],
         description="Without an argument, list every command by group. With a group keyword, list that\n"
                     "group; with a command name, show that command's synopsis and options.",
         examples=("help", "help domain", "help dominfo"))
def help_(ctx, command=None):
    reg = registry()
    if not command:
        return Text(help_overview(reg), json_data=[{"name": n, "group": g, "summary": s}
                                                  for n, g, s, _h in reg.summaries()])
    from vsh.registry import GROUPS

    # a group keyword wins over a command alias of the same name (guestfish's `domain`)
    items = [(n, s) for n, g, s, _h in reg.summaries() if g == command] if command in dict(GROUPS) else []
    if items:
        return Text(help_group(command, items), json_data=[{"name": n, "summary": s} for n, s in items])
    cmd = reg.get(command)
    if cmd is not None:
        return Text(help_command(cmd), json_data={
            "name": cmd.name, "group": cmd.group, "summary": cmd.summary, "synopsis": cmd.synopsis(),
            "options": [{"name": o.name, "kind": o.kind, "required": o.required, "help": o.help}
                        for o in cmd.opts]})
    items = [(n, s) for n, g, s, _h in reg.summaries() if g == command]
    if items:
        return Text(help_group(command, items), json_data=[{"name": n, "summary": s} for n, s in items])
    hint = reg.suggest(command)
    raise InvalidArgument(f"command or command group '{command}' doesn't exist",
                          hint=f"did you mean '{hint}'?" if hint else None)


@command("quit", group="virsh", summary="quit this interactive terminal", aliases=("exit",))
def quit_(ctx):
    raise QuitShell()


def _shell_quote(word: str) -> str:
    if word == "":
        return "''"
    if all(c.isalnum() or c in "@%_-+=:,./" for c in word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


@command("echo", group="virsh", summary="echo arguments",
         opts=[Opt("shell", kind="bool", help="escape for shell use"),
               Opt("xml", kind="bool", help="escape for XML use"),
               Opt("split", kind="bool", help="split each argument on ','; ',,' is a literal ','"),
               Opt("err", kind="bool", help="output to stderr"),
               Opt("string", kind="argv", help="arguments to echo")],
         exclusive=(("shell", "xml"), ("shell", "split"), ("xml", "split")),
         description="Join the arguments with single spaces; no newline of its own (like virsh).\n"
                     "With --split, every comma-separated piece is printed on a line of its own.",
         examples=("echo --shell \"it's\" 'a b'",))
def echo(ctx, shell=False, xml=False, split=False, err=False, string=()):
    words = list(string)
    if xml:
        from vsh.core.xml import escape_text

        words = [escape_text(w) for w in words]
    if shell:
        words = [_shell_quote(w) for w in words]
    if split:
        # virsh: every piece ends with a newline; the arguments are still joined by a space
        texts = []
        for word in words:
            parts = word.replace(",,", "\x00").split(",")
            texts.append("".join(p.replace("\x00", ",") + "\n" for p in parts))
        text = " ".join(texts)
    else:
        text = " ".join(words)
    if err:
        ctx.out.flush()
        ctx.err.write(f"error: {text}\n")
        ctx.err.flush()
        return None
    return Text(text, json_data={"text": text})


@command("cd", group="virsh", summary="change the current directory",
         opts=[Opt("dir", kind="dir", positional=True, help="directory to switch to (default: home)")])
def cd(ctx, dir=None):
    if not ctx.interactive:
        raise VshError("cd: command valid only in interactive mode")
    target = dir or os.path.expanduser("~")
    try:
        os.chdir(target)
    except FileNotFoundError:
        raise VshError(f"cd: No such file or directory: {target}") from None
    except NotADirectoryError:
        raise VshError(f"cd: Not a directory: {target}") from None
    except PermissionError:
        raise VshError(f"cd: Permission denied: {target}") from None
    return None


@command("pwd", group="virsh", summary="print the current directory")
def pwd(ctx):
    cwd = os.getcwd()
    return Text(cwd + "\n", json_data={"cwd": cwd})


@command("connect", group="virsh", summary="(re)connect to a store",
         opts=[Opt("name", positional=True, help="connection URI (vsh:///session, vsh:///system, ...?root=DIR)"),
               Opt("readonly", kind="bool", help="read-only connection")])
def connect(ctx, name=None, readonly=False):
    ctx.connect(name, readonly)
    return None


@command("uri", group="host", summary="print the connection URI")
def uri(ctx):
    text = ctx.conn.uri
    return Text(text + "\n", json_data={"uri": text})


@command("serve", group="virsh", summary="serve the API to a remote vsh over stdin/stdout",
         opts=[Opt("stdio", kind="bool", help="speak the remote protocol on stdin/stdout (the only way)"),
               Opt("connect", short="c", metavar="URI",
                   help="the connection to serve (default: the one the client asks for)")],
         description="What a client's -c vsh+ssh://HOST/session runs on HOST through ssh: the remote\n"
                     "protocol (docs/remote-protocol.md) on stdin/stdout until stdin ends. No socket is\n"
                     "listened on. The client names the connection to open (vsh:///session or\n"
                     "vsh:///system with its query); -c (or the global -c) serves that one instead.")
def serve(ctx, stdio=False, connect=None):
    from vsh.api.serve import serve_stdio

    if not stdio:
        raise InvalidArgument("serve needs --stdio: vsh listens on no socket")
    if serve_stdio(connect or ctx.uri):
        raise VshError("the remote protocol session ended on an error (the client was told)")
    return None


@command("hostname", group="host", summary="print the host name")
def hostname(ctx):
    name = ctx.conn.host.hostname()
    return Text(name + "\n", json_data={"hostname": name})


@command("version", group="host", summary="show versions",
         opts=[Opt("daemon", kind="bool", help="accepted for virsh compatibility (vsh has no daemon)")])
def version(ctx, daemon=False):
    facts = ctx.conn.host.versions()
    lines = [
        "Compiled against library: {} {}".format(*facts["compiled"]),
        "Using library: {} {}".format(*facts["library"]),
        "Using API: {} {}".format(*facts["api"]),
        "Running hypervisor: {} {}".format(facts["hypervisor"][0], facts["hypervisor"][1] or "not found"),
    ]
    name, number = facts["library"]
    return Text("".join(f"{line}\n" for line in lines),
                json_data={name: number, "hypervisor": facts["hypervisor"][0],
                           "hypervisor_version": facts["hypervisor"][1]})


# global options that take a value, as the shell scripts see them on a command line
_GLOBAL_WITH_VALUE = {"-c", "--connect", "-d", "--debug", "-e", "--escape", "-f", "--file", "-l", "--log",
                      "-a", "--add", "--format", "--domain"}


@command("complete", group="virsh", summary="internal command for autocompletion", hidden=True,
         opts=[Opt("words", kind="argv", help="the words typed so far; an empty last word completes the next one")],
         description="Print the candidates for the last word, one a line. The words come after '--' as\n"
                     "separate arguments, as the shell completion scripts pass them; global options\n"
                     "in front of the command are skipped (a -c URI is used for domain names).")
def complete_cmd(ctx, words=()):
    from vsh.completion import complete

    words = list(words)
    uri = None
    while len(words) > 1 and words[0].startswith("-") and words[0] != "-":
        word = words.pop(0)
        if word in _GLOBAL_WITH_VALUE and len(words) > 1:
            value = words.pop(0)
            if word in ("-c", "--connect"):
                uri = value
        elif word.startswith("--connect="):
            uri = word.split("=", 1)[1]
    if uri is not None:
        try:
            ctx.connect(uri, readonly=True)
        except VshError:
            return Lines([])
    return Lines(complete(ctx, words))


_BASH = r"""# bash completion for vsh (generated by `vsh completion bash`)
_vsh_complete() {
    local IFS=$'\n' cand
    local -a cands
    cands=($(vsh -q complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
    COMPREPLY=()
    for cand in "${cands[@]}"; do
        # a directory stays open for the next path component; anything else is a whole word
        if [[ $cand == */ ]]; then COMPREPLY+=("$cand"); else COMPREPLY+=("$cand "); fi
    done
    return 0
}
complete -o default -o nospace -F _vsh_complete vsh
"""

_ZSH = r"""#compdef vsh
# zsh completion for vsh (generated by `vsh completion zsh`)
_vsh() {
    local -a cands
    cands=("${(@f)$(vsh -q complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    compadd -Q -S '' -a cands
}
compdef _vsh vsh
"""

_FISH = r"""# fish completion for vsh (generated by `vsh completion fish`)
function __vsh_complete
    set -l words (commandline -opc)
    set -e words[1]
    vsh -q complete -- $words (commandline -ct) 2>/dev/null
end
complete -c vsh -f -a '(__vsh_complete)'
"""


@command("completion", group="virsh", summary="print a shell completion script",
         opts=[Opt("shell", kind="enum", positional=True, required=True, choices=("bash", "zsh", "fish"),
                   help="the shell")],
         examples=("vsh completion bash > /etc/bash_completion.d/vsh",))
def completion(ctx, shell):
    return Text({"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell])
