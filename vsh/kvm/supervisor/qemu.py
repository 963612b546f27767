"""The supervisor's QEMU process: launch it (stopped, with the QMP listener it inherits),
connect QMP and let the guest run, re-attach to a QEMU whose supervisor died, watch
its exit through a pidfd, and stop it (QMP quit, signals).

A mixin of :class:`vsh.kvm.supervisor.core.Supervisor`.
"""

from __future__ import annotations

import contextvars
import os
import signal
import time

from vsh.core import runtime as rt
from vsh.core.errors import Timeout, VshError
from vsh.kvm import cgroup, confine
from vsh.kvm.confine import sandbox, taps
from vsh.kvm.supervisor import aio
from vsh.kvm.supervisor.lifecycle import ACTION_KIND
from vsh.kvm.supervisor.log import describe_exit, log, shell_join


#: When the control request being served must be answered (``time.monotonic()``), or None.
REQUEST_DEADLINE = contextvars.ContextVar("REQUEST_DEADLINE", default=None)


class QemuProcess:
    """Launching, attaching to and stopping QEMU (a mixin of the Supervisor)."""

    def spawn_qemu(self) -> None:
        """Start QEMU stopped (-S) as our child, with the QMP listener fd it inherits."""
        first = self.lc.state == "shutoff" and not self.restarts
        self.lc.transition("starting", "booted")
        self._stop_reason = None
        self._shutdown_event = None
        self._shutdown_requested = self._reboot_requested = False
        self._start_swtpms()
        listener, self._qmp_sock = aio.qmp_helpers().listening_socket(self.qmp_path)
        tap_fds: list[int] = []
        try:
            self.argv = aio.qmp_helpers().qmp_argv(self.spec["argv"], self.qmp_path, listener.fileno())
            os.set_inheritable(listener.fileno(), True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_TRUNC if first else os.O_APPEND)
            log_fd = os.open(self.rundir / rt.QEMU_LOG, flags, 0o600)
            if first:   # console.log holds the current run (QEMU may be told to append)
                os.close(os.open(self.rundir / rt.CONSOLE_LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                 | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
            null_fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._taint_notice(log_fd)
                plan = confine.prepare(self.rundir, self.argv)     # None unless vsh is root
                self.argv, tap_fds = taps.open_for_argv(self.argv)
                env = dict(os.environ, **(self.spec.get("env") or {}))
                pid = sandbox.spawn(self.argv, env, null_fd, log_fd, plan,
                                    mempolicy=sandbox.mempolicy(self.spec.get("mempolicy")))
            finally:
                os.close(log_fd)
                os.close(null_fd)
        except (OSError, VshError) as exc:
            self._qmp_sock.close()
            self._qmp_sock = None
            self._stop_swtpms()
            self._release_what_qemu_held()
            self.lc.transition("shutoff", "failed")
            if isinstance(exc, VshError):
                raise
            if isinstance(exc, sandbox.ConfineError):
                raise VshError(f"internal error: cannot confine QEMU as user '{confine.QEMU_USER}': {exc.strerror}",
                               "(QEMU runs unprivileged in its own mount namespace when vsh runs as root)",
                               f"command: {shell_join(self.argv)}") from None
            if isinstance(exc, sandbox.MempolicyError):
                raise VshError(f"internal error: cannot set QEMU's NUMA memory policy: {exc.strerror}") from None
            raise VshError(f"internal error: cannot execute '{self.argv[0]}': {exc.strerror or exc}",
                           f"command: {shell_join(self.argv)}") from None
        finally:
            listener.close()
            for fd in tap_fds:
                os.close(fd)
        self.qemu_pid = pid
        self.is_child = True
        self.qemu_starttime = rt.proc_starttime(pid)
        self.started_at = time.time()
        self.exit_status = self.exit_signal = None
        self.pidfd = os.pidfd_open(pid)
        log(f"QEMU started, pid {pid}: {shell_join(self.argv)}")
        self._place_in_cgroup()
        self.write_state()


    def _start_swtpms(self) -> None:
        """Start the swtpm of each emulated TPM before QEMU, which connects to it (vsh.kvm.swtpm)."""
        tpms = self.spec.get("swtpm") or []
        if not tpms:
            return
        from vsh.kvm import swtpm

        try:
            for tpm in tpms:
                self.swtpm_pids.append((swtpm.spawn(tpm, self.name, self.spec.get("uuid")), tpm["socket"]))
                log(f"swtpm started, pid {self.swtpm_pids[-1][0]}, control socket {tpm['socket']}")
        except VshError:
            self._stop_swtpms()
            self.lc.transition("shutoff", "failed")
            raise

    def _stop_swtpms(self) -> None:
        """Reap the swtpm processes of this run (they end with QEMU; stragglers are killed)."""
        if not self.swtpm_pids:
            return
        from vsh.kvm import swtpm

        while self.swtpm_pids:
            pid, sock = self.swtpm_pids.pop()
            swtpm.stop(pid, sock)
            log(f"swtpm pid {pid} ended")

    def _taint_notice(self, log_fd: int) -> None:
        """<qemu:commandline> arguments in the argv taint the domain, as libvirt says in the
        domain's log (``qemu.log``) and the supervisor's."""
        if self.spec.get("tainted"):
            line = (f"Domain id={self.spec.get('id')} is tainted: "
                    + ", ".join(self.spec["tainted"]) + "\n")
            os.write(log_fd, line.encode())
            log(line.strip())

    async def _abandon_launch(self) -> None:
        """A launch that failed before _finish_launch() took QEMU over (e.g. the control
        socket could not be served): QEMU goes too, nothing is left running."""
        if self.attach or self.pidfd is None or self._exit_fut is not None:
            return      # re-attached QEMU stays; _finish_launch() cleans up after itself
        self._launching = True
        try:
            self._watch_qemu()
            log(f"killing QEMU pid {self.qemu_pid}: the launch failed")
            await self._kill_qemu(signal.SIGKILL)
        finally:
            self._launching = False
        await self._drop_qmp()
        self._release_what_qemu_held()
        if self.lc.state != "shutoff":
            self.lc.transition("shutoff", "failed")


    def _watch_qemu(self) -> None:
        loop = aio.asyncio.get_running_loop()
        self._exit_fut = loop.create_future()
        loop.add_reader(self.pidfd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        loop = aio.asyncio.get_running_loop()
        loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = None
        code = None
        if self.is_child:
            try:
                _, status = os.waitpid(self.qemu_pid, 0)
                code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                pass
        if code is not None:
            self.exit_status = code if code >= 0 else None
            self.exit_signal = -code if code < 0 else None
        log(f"QEMU (pid {self.qemu_pid}) exited: {describe_exit(code)}")
        self._stop_swtpms()
        if not self._exit_fut.done():
            self._exit_fut.set_result(code)
        if not self._launching:
            self._spawn_task(self._after_exit(code))

    async def _finish_launch(self, running_reason: str = "booted") -> None:
        """Connect QMP to the QEMU spawn_qemu() started, set the actions, and let it run."""
        self._launching = True
        ok = False
        try:
            self._watch_qemu()
            self._apply_cgroup_tune()
            self._open_perf(self.spec.get("perf") or [])
            sock, self._qmp_sock = self._qmp_sock, None
            timeout = float(self.spec.get("timeout") or 30.0)
            try:
                self._qmp = await aio.qmp.connect(sock, timeout=timeout, name=self.name,
                                               abort=self._exit_fut)
            except aio.qmp.Aborted as exc:
                raise self._launch_failed(exc.args[0]) from None
            except Timeout:
                await self._kill_qemu()
                raise Timeout(f"QEMU for domain '{self.name}' did not answer on its QMP socket "
                              f"within {timeout:g} s", f"command: {shell_join(self.argv)}",
                              *self._qemu_output()) from None
            except (aio.qmplib.QMPError, OSError) as exc:
                if await self._exited_within(2.0):
                    raise self._launch_failed(self._exit_fut.result()) from None
                await self._kill_qemu()
                raise VshError(f"internal error: cannot connect to QEMU's QMP socket: {exc}",
                               f"command: {shell_join(self.argv)}") from None
            self._events_task = self._spawn_task(self._pump_events(self._qmp))
            await self._setup_qemu()
            self._plug_taps()
            if self.spec.get("vcpus_hotplug"):            # hot-pluggable vCPUs, as libvirt adds them
                await self.add_vcpus(int(self.spec["vcpus_hotplug"]))
            first = self.spec.get("first_run") or {}      # restore / revert: once only
            if first.get("incoming"):
                await self._incoming(first["incoming"])
            elif self.spec.get("balloon_kib"):            # <currentMemory>, before the CPUs run
                await self._exec("balloon", {"value": int(self.spec["balloon_kib"]) * 1024})
                self.balloon_kib = int(self.spec["balloon_kib"])
            if self.spec.get("paused"):
                self.lc.transition("paused", first.get("paused_reason") or "user")
            else:
                await self._exec("cont")
                self.lc.transition("running", first.get("running_reason") or running_reason)
            ok = True
            if first:
                self._forget_first_run()
        except Exception:
            if self._exit_fut.done() or await self._exited_within(0.2):
                err = self._launch_failed(self._exit_fut.result())
            else:
                err = None
                await self._kill_qemu()
            await self._drop_qmp()
            self._release_what_qemu_held()
            if self.lc.state != "shutoff":
                self.lc.transition("shutoff", self._stop_reason or "failed")
            if err is not None:
                raise err from None
            raise
        finally:
            self._launching = False
            if ok and self._exit_fut.done():       # QEMU died right after starting
                self._spawn_task(self._after_exit(self._exit_fut.result()))

    async def _setup_qemu(self) -> None:
        # A guest power-off pauses QEMU and we apply on_poweroff (as libvirt's -no-shutdown):
        # QEMU never ends on its own, so if we are gone it waits, and the supervisor that
        # re-attaches sees the shutdown (query-status) and finishes it.  Panics pause too.
        try:
            await self._set_actions()
        except VshError as exc:
            log(f"warning: set-action failed, lifecycle actions limited: {exc}")
        try:
            await self._set_link_states()
        except VshError as exc:
            log(f"warning: set_link failed: {exc}")
        try:
            chardevs = await self._exec("query-chardev")
            self.console = aio.qmp.parse_chardevs(chardevs)
            from vsh.kvm import channels

            await self.channel_states(channels.from_chardevs(chardevs))
        except VshError as exc:
            log(f"warning: query-chardev failed: {exc}")
        try:
            from vsh.kvm import netacct     # traffic of user-mode NICs (domifstat, domifaddr)
            await netacct.setup(self)
        except Exception as exc:   # noqa: BLE001 - accounting must never stop a start
            log(f"warning: traffic accounting unavailable: {exc}")

    def _plug_taps(self) -> None:
        """Plug the taps QEMU made into their bridges before the guest runs (a failure fails the start)."""
        taps = self.spec.get("taps") or []
        if not taps:
            return
        from vsh.kvm import hostnet

        for tap in taps:
            hostnet.attach_tap(tap["dev"], tap["bridge"], tap.get("mtu"))
            log(f"tap {tap['dev']} plugged into bridge {tap['bridge']}")

    async def _set_link_states(self) -> None:
        """NICs whose live XML says <link state='down'/> start unplugged (before the guest runs)."""
        try:
            with open(self.rundir / rt.LIVE_XML, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return
        if b"<link" not in data:
            return
        from vsh.core.xml import parse
        from vsh.kvm.argv.network import nic_qemu_id

        for n, nic in enumerate(parse(data, "live.xml").findall("./devices/interface")):
            link = nic.find("link")
            if link is not None and link.get("state") == "down":
                await self._exec("set_link", {"name": nic_qemu_id(nic, n), "up": False})

    async def _set_actions(self) -> None:
        """QEMU's own reactions (``set-action``) for the domain's lifecycle actions: a power-off
        always pauses (the supervisor applies on_poweroff), a reboot resets when on_reboot restarts."""
        reboot = "reset" if ACTION_KIND.get(self.lifecycle["on_reboot"]) == "restart" else "shutdown"
        await self._exec("set-action", {"shutdown": "pause", "reboot": reboot, "panic": "pause"})
        self._shutdown_action = "pause"

    def _launch_failed(self, code) -> VshError:
        out = self._qemu_output()
        last = next((line.strip() for line in reversed(out[1:]) if line.strip()), "")
        first = f"internal error: QEMU exited while starting domain '{self.name}' ({describe_exit(code)})"
        if last:
            first += f": {last}"
        return VshError(first, f"command: {shell_join(self.argv)}", *out)

    def _qemu_output(self) -> list[str]:
        lines = [line for line in rt.tail(self.rundir / rt.QEMU_LOG, 20)
                 if not line.startswith("char device redirected to")]
        if not lines:
            return []
        return ["QEMU printed (last lines):"] + ["  " + line for line in lines]

    async def _exited_within(self, timeout: float) -> bool:
        if self._exit_fut is None:
            return False
        try:
            await aio.asyncio.wait_for(aio.asyncio.shield(self._exit_fut), timeout)
        except aio.asyncio.TimeoutError:
            return False
        return True

    async def _kill_qemu(self, sig=signal.SIGKILL, timeout: float = 5.0) -> bool:
        """Signal QEMU and wait for it to exit; True if it did."""
        if self._exit_fut is None or self._exit_fut.done() or self.pidfd is None:
            return True
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass
        return await self._exited_within(timeout)

    def _place_in_cgroup(self) -> None:
        """QEMU into a cgroup of its own (:mod:`vsh.kvm.cgroup`); where it cannot, it stays
        in ours and the log says why."""
        self._cgroup_error = None
        try:
            self.cgroups = cgroup.place(self.qemu_pid, warn=lambda text: log(f"warning: {text}"))
        except cgroup.CgroupError as exc:
            self.cgroups = []
            self._cgroup_error = exc.strerror
            log(f"warning: {exc.strerror}")
        if self.cgroups:
            log("QEMU's cgroup: " + ", ".join(self.cgroups))

    def _apply_cgroup_tune(self) -> None:
        """The definition's cgroup limits (``<cputune>`` weight and bandwidth, ``<memtune>``,
        ``<blkiotune>``, restrictive ``<numatune>``: the spec's ``cgroup_tune``) on QEMU's
        groups while it is still stopped; where one cannot be set the start fails, saying why."""
        plan = self.spec.get("cgroup_tune")
        if not plan:
            return
        from vsh.kvm import cgtune

        try:
            cgtune.apply(self.qemu_pid, plan)
        except cgroup.CgroupError as exc:
            why = exc.strerror
            if self._cgroup_error:
                why += f" (QEMU has no cgroup of its own: {self._cgroup_error})"
            raise VshError(f"unsupported configuration: {why}") from None
        log("QEMU's cgroup limits: " + ", ".join(sorted(k for k, v in plan.items() if v)))

    def _open_perf(self, names) -> None:
        """Perf counters on QEMU for the enabled ``<perf>`` events (:mod:`vsh.kvm.perf`); one
        that cannot be counted fails the start, saying why."""
        if not names:
            return
        from vsh.kvm import perf

        try:
            self.perf.enable(self.qemu_pid, names)
        except perf.PerfError as exc:
            raise VshError(f"unsupported configuration: {exc.strerror}") from None
        log("perf events: " + ", ".join(self.perf.enabled))

    def _release_what_qemu_held(self) -> None:
        """Undo what QEMU was given for its run once it is gone, before the state says shut
        off: its perf counters, its file grants (:mod:`vsh.kvm.confine`; whoever waited for
        the stop finds the files as they were) and its cgroup."""
        self.perf.close()
        for warning in confine.release(self.rundir) + cgroup.remove(self.cgroups):
            log("warning: " + warning)
        self.cgroups = []

    async def _drop_qmp(self) -> None:
        if self._events_task is not None:
            self._events_task.cancel()
            self._events_task = None
        qmp, self._qmp = self._qmp, None
        if qmp is not None:
            try:
                await aio.asyncio.wait_for(qmp.disconnect(), 2.0)
            except BaseException as exc:   # noqa: BLE001 - the peer is gone; nothing to save
                if isinstance(exc, aio.asyncio.CancelledError):
                    raise
        if self._qmp_sock is not None:
            self._qmp_sock.close()
            self._qmp_sock = None

    async def _exec(self, cmd: str, args: dict | None = None, timeout: float = 30.0):
        """One QMP command. Within a control request it ends before the request's own
        deadline (:data:`REQUEST_DEADLINE`), so that a QEMU that does not answer is named as
        the culprit, not the supervisor the client is still waiting for."""
        if self._qmp is None:
            raise self._not_running()
        deadline = REQUEST_DEADLINE.get()
        if deadline is not None:
            timeout = max(0.5, min(timeout, deadline - time.monotonic()))
        try:
            return await aio.qmp.execute(self._qmp, cmd, args, timeout)
        except Timeout:
            why = rt.why_unresponsive(self.qemu_pid) or "it is running but its monitor is blocked"
            raise Timeout(f"QEMU (pid {self.qemu_pid}) of domain '{self.name}' did not answer the QMP "
                          f"command '{cmd}' within {round(timeout, 1):g} s: {why} (the command is still queued: QEMU "
                          "runs it if it wakes up)") from None

    # ---- attaching to a QEMU whose supervisor died --------------------------------------

    async def _attach(self) -> None:
        st = self.prev
        pid = st.get("qemu_pid")
        if not rt.pid_alive(pid, st.get("qemu_starttime")):
            raise self._not_running()
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise self._not_running() from None
        self.qemu_pid, self.qemu_starttime = pid, st.get("qemu_starttime")
        self.is_child = False
        if not rt.pid_alive(pid, self.qemu_starttime):
            raise self._not_running()
        log(f"attaching to QEMU pid {pid} (previous supervisor {st.get('supervisor_pid')} is gone)")
        self.cgroups = cgroup.groups_of(pid)     # the dead supervisor's placement, removed at the end
        try:        # its perf counters died with it: counted anew from here
            self.perf.enable(pid, st.get("perf") or [])
        except OSError as exc:
            log(f"warning: {exc.strerror}")
        self._launching = True
        try:
            self._watch_qemu()
            try:
                self._qmp = await aio.qmp.connect(str(self.qmp_path), timeout=10.0, name=self.name,
                                               abort=self._exit_fut)
            except aio.qmp.Aborted:
                raise self._not_running() from None
            except (aio.qmplib.QMPError, OSError, Timeout) as exc:
                raise VshError(f"internal error: cannot re-attach to domain '{self.name}': "
                               f"QMP socket {self.qmp_path}: {exc}") from None
            self._events_task = self._spawn_task(self._pump_events(self._qmp))
            await self._setup_qemu()
            status = (await self._exec("query-status")).get("status")
        except VshError:
            await self._drop_qmp()
            if self._exit_fut.done():
                self._launching = False
                self._spawn_task(self._after_exit(self._exit_fut.result()))
            raise
        finally:
            self._launching = False
        if self._exit_fut.done():
            self._spawn_task(self._after_exit(self._exit_fut.result()))
            return
        log(f"attached; QEMU status '{status}', recorded state '{self.lc.state}'"
            + (f", pending {self.prev['pending']}" if self.prev.get("pending") else ""))
        await self._catch_up(status)
        self.write_state()
        if self._exit_fut.done():       # the action ended QEMU: report once the state says so
            try:
                await self._wait_for(["shutoff"], 10.0)
            except VshError as exc:
                log(" | ".join(exc.lines))

    async def _catch_up(self, status: str) -> None:
        """Make the state agree with what QEMU did while nobody watched, and finish what the
        previous supervisor had begun (its state.json: the state, a pending shutdown/reboot)."""
        if status == "running":
            self.lc.move("running", "unpaused" if self.lc.state == "paused" else
                         (self.lc.reason if self.lc.state == "running" else "booted"))
        elif status == "prelaunch" and self.lc.state in ("starting", "shutdown") \
                and not self.spec.get("paused"):
            # a start, or a restart action between its reset and its cont
            await self._exec("cont")
            self.lc.move("running", "booted")
        elif status == "shutdown":
            # The guest powered off (QEMU pauses on it): a pending ACPI reboot restarts it,
            # else on_poweroff applies.  (A guest reset that on_reboot=destroy turned into a
            # shutdown looks the same to query-status: on_poweroff decides then.)
            self._shutdown_event = {"guest": True, "reason": "guest-shutdown"}
            await self._on_shutdown(self._shutdown_event)
        elif status == "guest-panicked":
            await self._on_panic({})
        elif self.lc.state != "paused":
            self.lc.move("paused", "user")


    async def _quit(self) -> None:
        """Ask QEMU to quit (QMP), SIGKILL if it has not exited after QUIT_TIMEOUT."""
        try:
            await self._exec("quit", timeout=self.QUIT_TIMEOUT)
        except VshError:
            pass        # the reply races the exit
        if not await self._exited_within(self.QUIT_TIMEOUT):
            log("QEMU did not quit; SIGKILL")
            await self._kill_qemu(signal.SIGKILL)


    def _forget_first_run(self) -> None:
        """A restore or revert happens once: a crash restart boots the plain argv."""
        first = self.spec.pop("first_run", None) or {}
        drop = list(first.get("drop_argv") or [])
        argv = list(self.spec["argv"])
        for i in range(len(argv) - len(drop) + 1) if drop else ():
            if argv[i:i + len(drop)] == drop:
                del argv[i:i + len(drop)]
                break
        self.spec["argv"] = argv
        try:
            rt.write_json_atomic(self.rundir / rt.LAUNCH_FILE, self.spec)
        except OSError as exc:
            log(f"warning: cannot rewrite {rt.LAUNCH_FILE}: {exc}")
