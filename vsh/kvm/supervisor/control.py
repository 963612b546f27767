"""The supervisor's control server: the private socket (``control.sock``, 0600) and the
requests it answers, one ``op_NAME`` method per operation (protocol in
:mod:`vsh.kvm.client`); event subscriptions.

A mixin of :class:`vsh.kvm.supervisor.core.Supervisor`.
"""

from __future__ import annotations

import json
import os
import signal
import time

from vsh.core import runtime as rt
from vsh.core.errors import InvalidArgument, OperationInvalid, Timeout, Unsupported, VshError
from vsh.kvm.supervisor import aio
from vsh.kvm.supervisor.lifecycle import TRANSITIONS
from vsh.kvm.supervisor.log import log
from vsh.kvm.supervisor.qemu import REQUEST_DEADLINE


def reply_error(exc: VshError) -> bytes:
    """A control reply (one JSON line) that carries ``exc``."""
    return json.dumps({"ok": False, "error": {"type": type(exc).__name__,
                                              "lines": list(exc.lines)}}).encode() + b"\n"


def _deadline(req: dict) -> float | None:
    """The client waits ``timeout_s`` (plus slack) for its answer: QMP calls end before that."""
    try:
        return time.monotonic() + float(req["timeout_s"])
    except (KeyError, TypeError, ValueError):
        return None


class ControlServer:
    """The control socket and its operations (a mixin of the Supervisor)."""

    async def _serve_control(self) -> None:
        path = self.rundir / rt.CONTROL_SOCKET
        old = os.umask(0o177)
        try:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            self._server = await aio.asyncio.start_unix_server(self._handle, path=str(path),
                                                           limit=1 << 20)
            os.chmod(path, 0o600)
        except OSError as exc:
            raise VshError(f"internal error: cannot serve the control socket {path}: "
                           f"{exc.strerror or exc}") from None
        finally:
            os.umask(old)

    async def _handle(self, reader, writer) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                    op = str(req["op"])
                except (ValueError, KeyError, TypeError):
                    writer.write(reply_error(InvalidArgument("malformed control request")))
                    await writer.drain()
                    continue
                if op == "subscribe":
                    await self._subscribe(req, writer)
                    break
                fut = aio.asyncio.get_running_loop().create_future()
                self._inflight.add(fut)
                try:
                    handler = getattr(self, "op_" + op, None)
                    if handler is None:
                        raise InvalidArgument(f"unknown control operation '{op}'")
                    REQUEST_DEADLINE.set(_deadline(req))
                    result = await handler(req)
                    data = json.dumps({"ok": True, "result": result}).encode() + b"\n"
                except VshError as exc:
                    data = reply_error(exc)
                except Exception as exc:   # noqa: BLE001
                    import traceback
                    log(f"op {op} failed:\n" + traceback.format_exc())
                    data = reply_error(VshError(f"internal error: {op}: {exc}"))
                finally:
                    self._inflight.discard(fut)
                    fut.set_result(None)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, aio.asyncio.IncompleteReadError, aio.asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _subscribe(self, req: dict, writer) -> None:
        names = set(req.get("events") or ())
        queue = aio.asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        try:
            writer.write(json.dumps({"ok": True, "result": self.state_dict()}).encode() + b"\n")
            await writer.drain()
            while True:
                event = await queue.get()
                if event is None:
                    break
                if names and event.get("event") not in names:
                    continue
                writer.write(json.dumps(event).encode() + b"\n")
                await writer.drain()
        finally:
            self._subscribers.discard(queue)

    # ---- operations ---------------------------------------------------------------------

    def _not_running(self) -> OperationInvalid:
        return OperationInvalid(f"internal error: domain '{self.name}' not running")

    def _require(self, *states: str) -> None:
        if self.lc.state == "starting":
            raise OperationInvalid(f"internal error: domain '{self.name}' is still starting")
        if self.lc.state not in states or self._qmp is None:
            raise self._not_running()

    async def _wait_for(self, states, timeout: float) -> None:
        if self.lc.state in states:
            return
        fut = aio.asyncio.get_running_loop().create_future()
        entry = (frozenset(states), fut)
        self._waiters.append(entry)
        try:
            await aio.asyncio.wait_for(fut, timeout)
        except aio.asyncio.TimeoutError:
            raise Timeout(f"domain '{self.name}' did not reach state {'/'.join(states)} within "
                          f"{timeout:g} s (it is {self.lc.state})") from None
        finally:
            self._waiters.remove(entry)

    async def op_status(self, req):
        return self.state_dict()

    async def op_wait(self, req):
        states = req.get("states") or ["shutoff"]
        unknown = [s for s in states if s not in TRANSITIONS]
        if unknown:
            raise InvalidArgument(f"unknown domain state '{unknown[0]}'")
        await self._wait_for(states, float(req.get("timeout_s") or 60.0))
        return self.state_dict()

    async def op_shutdown(self, req):
        self._require("running", "paused", "shutdown")
        self._shutdown_requested = True
        self.write_state()          # before the button: a supervisor that re-attaches knows
        await self._exec("system_powerdown")
        return self.state_dict()

    async def op_reboot(self, req):
        self._require("running", "paused")
        mode = req.get("mode") or "acpi"
        if mode == "reset":
            await self._exec("system_reset")
        elif mode == "acpi":
            self._reboot_requested = True   # the next guest power-off is a reset (QEMU pauses on it)
            self.write_state()              # before the button: a supervisor that re-attaches knows
            await self._exec("system_powerdown")
        else:
            raise InvalidArgument(f"unknown reboot mode '{mode}' (use acpi or reset)")
        return self.state_dict()

    async def op_reset(self, req):
        self._require("running", "paused", "shutdown", "crashed", "pmsuspended")
        await self._exec("system_reset")
        if self.lc.state in ("crashed", "shutdown"):
            await self._exec("cont")
            self.lc.move("running", "crashed" if self.lc.state == "crashed" else "booted")
        return self.state_dict()

    async def op_suspend(self, req):
        self._require("running", "paused")
        if self.lc.state == "running":
            await self._exec("stop")
            self.lc.move("paused", "user")
        return self.state_dict()

    async def op_resume(self, req):
        self._require("running", "paused", "crashed", "shutdown")
        if self.lc.state != "paused":
            raise OperationInvalid(f"internal error: domain '{self.name}' not paused")
        await self._exec("cont")
        self.lc.move("running", "unpaused")
        return self.state_dict()

    async def op_destroy(self, req):
        if self.lc.state == "shutoff":
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        graceful = bool(req.get("graceful"))
        timeout = float(req.get("timeout_s") or 10.0)
        if self._exit_fut is not None and not self._exit_fut.done():
            self._stopping("destroyed")
            log(f"destroy{' (graceful)' if graceful else ''}: SIGTERM to QEMU pid {self.qemu_pid}")
            if not await self._kill_qemu(signal.SIGTERM, timeout):
                if graceful:
                    self._stopping(None)
                    raise Timeout(f"QEMU (pid {self.qemu_pid}) did not exit within {timeout:g} s "
                                  "of SIGTERM; use destroy without --graceful")
                log("QEMU ignored SIGTERM; SIGKILL")
                if not await self._kill_qemu(signal.SIGKILL, 5.0):
                    raise VshError(f"internal error: QEMU (pid {self.qemu_pid}) did not exit "
                                   "after SIGKILL (stuck in the kernel?)")
        await self._wait_for(["shutoff"], 10.0)
        return self.state_dict()

    async def op_qmp(self, req):
        self._require("running", "paused", "shutdown", "crashed", "pmsuspended")
        cmd, args = str(req.get("command")), req.get("arguments") or None
        timeout = float(req.get("timeout_s") or 30.0)
        if not req.get("raw"):
            return await self._exec(cmd, args, timeout=timeout)
        # passthrough: QEMU's reply as it is, errors included (qemu-monitor-command)
        try:
            return {"return": await aio.asyncio.wait_for(self._qmp.execute(cmd, args), timeout)}
        except aio.qmplib.ExecuteError as exc:
            return {"error": {"class": exc.error_class, "desc": str(exc)}}
        except aio.asyncio.TimeoutError:
            raise Timeout(f"QEMU did not answer the QMP command '{cmd}' within {timeout:g} s") from None
        except aio.qmplib.QMPError as exc:
            raise OperationInvalid(f"internal error: QMP connection lost during '{cmd}': "
                                   f"{exc or type(exc).__name__}") from None

    async def op_hmp(self, req):
        self._require("running", "paused", "shutdown", "crashed", "pmsuspended")
        return await self._exec("human-monitor-command", {"command-line": str(req.get("line", ""))},
                                timeout=float(req.get("timeout_s") or 30.0))

    async def op_balloon(self, req):
        self._require("running", "paused")
        kib = int(req.get("kib", 0))
        if kib <= 0:
            raise InvalidArgument(f"invalid memory size {kib} KiB")
        await self._exec("balloon", {"value": kib * 1024})
        return self.state_dict()

    async def op_perf(self, req):
        """Enable and disable perf events on QEMU (``enable``, ``disable``: names); the open ones
        and their values."""
        from vsh.kvm import perf

        self._require("running", "paused")
        self.perf.disable(req.get("disable") or [])
        try:
            self.perf.enable(self.qemu_pid, req.get("enable") or [])
        except perf.PerfError as exc:
            raise Unsupported(f"unsupported configuration: {exc.strerror}") from None
        if req.get("enable") or req.get("disable"):
            log("perf events: " + (", ".join(self.perf.enabled) or "none"))
            self.write_state()
        return {"events": self.perf.enabled, "values": self.perf.values()}

    async def op_setvcpus(self, req):
        self._require("running", "paused")
        count = int(req.get("count", 0))
        slots = await self._exec("query-hotpluggable-cpus")
        if count < 1 or count > len(slots):
            raise InvalidArgument(f"requested vcpus is greater than max allowable vcpus for the "
                                  f"live domain: {count} > {len(slots)}" if count > 1 else
                                  f"invalid vCPU count {count}")
        online = [s for s in slots if s.get("qom-path")]
        if count > len(online):
            await self.add_vcpus(count - len(online), slots)
        elif count < len(online):
            if _accel(self.argv) == "tcg":
                raise Unsupported(TCG_UNPLUG)
            removable = [s for s in online if "/peripheral/" in s["qom-path"]]
            need = len(online) - count
            if len(removable) < need:
                raise OperationInvalid(f"internal error: only {len(removable)} hot-plugged vCPUs "
                                       f"can be unplugged")
            removable.sort(key=_slot_order)
            for slot in removable[-need:]:          # the highest go first
                await self._exec("device_del", {"id": slot["qom-path"].rsplit("/", 1)[1]})
        return {"vcpus": count, "max": len(slots)}


    async def op_set_lifecycle(self, req):
        """Change on_poweroff / on_reboot / on_crash from now on (and for a re-attached supervisor)."""
        self._require("running", "paused", "shutdown", "crashed", "pmsuspended")
        from vsh.kvm.supervisor.lifecycle import LIFECYCLE_ACTIONS

        key, action = str(req.get("event") or ""), str(req.get("action") or "")
        if key not in self.lifecycle or action not in LIFECYCLE_ACTIONS:
            raise InvalidArgument(f"unknown lifecycle action '{action}' for {key}")
        self.lifecycle[key] = action
        self.spec["lifecycle"] = dict(self.lifecycle)
        rt.write_json_atomic(self.rundir / rt.LAUNCH_FILE, self.spec)
        await self._set_actions()
        self.write_state()
        return self.state_dict()

    async def add_vcpus(self, n: int, slots: list | None = None) -> None:
        """device_add ``n`` vCPUs into the first free slots (ids vsh-vcpu<socket-core-thread...>)."""
        if slots is None:
            slots = await self._exec("query-hotpluggable-cpus")
        # QEMU lists the slots from the highest; fill them from the lowest, as -smp does
        offline = sorted((s for s in slots if not s.get("qom-path")), key=_slot_order)
        for slot in offline[:n]:
            props = slot.get("props") or {}
            dev_id = "vsh-vcpu" + "-".join(str(props[k]) for k in sorted(props))
            await self._exec("device_add", dict(props, driver=slot["type"], id=dev_id))

    async def op_attach_device(self, req):
        self._require("running", "paused")
        from vsh.kvm import hotplug
        return await hotplug.attach(self, str(req.get("xml") or ""))

    async def op_detach_device(self, req):
        self._require("running", "paused")
        from vsh.kvm import hotplug
        return await hotplug.detach(self, str(req.get("xml") or ""),
                                    float(req.get("wait_s") or hotplug.DETACH_TIMEOUT))

    async def op_change_media(self, req):
        self._require("running", "paused")
        from vsh.kvm import hotplug
        return await hotplug.change_media(self, str(req.get("target") or ""), req.get("xml") or None,
                                          force=bool(req.get("force")),
                                          timeout=float(req.get("wait_s") or hotplug.TRAY_TIMEOUT))


def _slot_order(slot: dict) -> list:
    """A vCPU slot's place in -smp's order (socket, die, core, thread)."""
    props = slot.get("props") or {}
    return [props.get(k, 0) for k in ("node-id", "socket-id", "die-id", "core-id", "thread-id")]


#: Why vsh refuses to unplug a vCPU under TCG. Measured with QEMU 7.2: after a TCG vCPU that
#: the guest had online is unplugged, QEMU still has the memory listener of the vCPU's address
#: space (tcg_commit); the next change of the memory map (a stop/cont then the dirty logging a
#: save starts) flushes the freed vCPU's TLB, and QEMU dies of heap corruption (SIGSEGV or
#: "free(): invalid next size" in qemu_savevm_state_cleanup). Upstream frees it with
#: cpu_address_space_destroy, which QEMU 7.2 lacks.
TCG_UNPLUG = ("Operation not supported: QEMU cannot unplug a vCPU of a TCG (type='qemu') domain safely: "
              "the unplugged vCPU's memory listener stays behind and a later save or memory map change "
              "crashes QEMU; use --config and restart the domain")


def _accel(argv: list) -> str:
    """The accelerator QEMU's argv asks for (-accel NAME or -machine ...,accel=NAME)."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "-accel":
            return argv[i + 1].split(",")[0]
        if arg in ("-machine", "-M") and "accel=" in argv[i + 1]:
            return argv[i + 1].split("accel=")[1].split(",")[0].split(":")[0]
    return "tcg"