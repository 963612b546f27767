"""memtune, blkiotune, numatune and perf on a shut-off domain: virsh's formats, the definition's
<memtune>, <blkiotune>, <numatune> and <perf>, and libvirt's refusals. No VMs."""

import json


def lines(*pairs):
    return "".join(f"{k:<15}: {v}\n" for k, v in pairs) + "\n"


def test_memtune_query_and_set(vsh, define):
    define("vm1")
    assert vsh("memtune", "vm1").out == lines(("hard_limit", "unlimited"), ("soft_limit", "unlimited"),
                                              ("swap_hard_limit", "unlimited"))
    assert vsh("memtune", "vm1", "--hard-limit", "1G", "--swap-hard-limit", "2G").status == 0
    assert vsh("memtune", "vm1", "--soft-limit", "102400", "--config").status == 0
    assert vsh("memtune", "vm1").out == lines(("hard_limit", 1048576), ("soft_limit", 102400),
                                              ("swap_hard_limit", 2097152))
    assert json.loads(vsh("memtune", "vm1", "--json").out)["hard_limit"] == 1048576
    assert "<hard_limit unit='KiB'>1048576</hard_limit>" in vsh("dumpxml", "vm1").out
    res = vsh("memtune", "vm1", "--swap-hard-limit", "10")
    assert res.err == ("error: invalid argument: memory hard_limit tunable value must be lower than or equal to "
                       "swap_hard_limit\n")
    res = vsh("memtune", "vm1", "--min-guarantee", "1")
    assert res.status == 1 and "min_guarantee" in res.err
    assert vsh("memtune", "vm1", "--soft-limit", "-1").status == 0
    assert "soft_limit" not in vsh("dumpxml", "vm1").out
    res = vsh("memtune", "vm1", "--live")
    assert res.status == 1 and "domain is not running" in res.err


def test_blkiotune(vsh, define):
    define("vm1")
    assert vsh("blkiotune", "vm1").out == lines(("weight", 0), ("device_weight", ""), ("device_read_iops_sec", ""),
                                                ("device_write_iops_sec", ""), ("device_read_bytes_sec", ""),
                                                ("device_write_bytes_sec", ""))
    assert vsh("blkiotune", "vm1", "--weight", "500", "--device-weights", "/dev/sda,300",
               "--device-read-iops-sec", "/dev/sda,1000,/dev/sdb,20").status == 0
    out = json.loads(vsh("blkiotune", "vm1", "--json").out)
    assert out["weight"] == 500 and out["device_weight"] == "/dev/sda,300"
    assert out["device_read_iops_sec"] == "/dev/sda,1000,/dev/sdb,20"
    assert vsh("blkiotune", "vm1", "--device-read-iops-sec", "/dev/sdb,0").status == 0
    assert json.loads(vsh("blkiotune", "vm1", "--json").out)["device_read_iops_sec"] == "/dev/sda,1000"
    assert vsh("blkiotune", "vm1", "--weight", "5").err == "error: invalid argument: out of blkio weight range.\n"
    res = vsh("blkiotune", "vm1", "--device-weights", "/dev/sda")
    assert res.status == 1 and "unable to parse blkio device" in res.err


def test_numatune(vsh, define):
    define("vm1")
    assert vsh("numatune", "vm1").out == lines(("numa_mode", "strict"), ("numa_nodeset", ""))
    assert vsh("numatune", "vm1", "--mode", "1", "--nodeset", "0").status == 0
    assert vsh("numatune", "vm1").out == lines(("numa_mode", "preferred"), ("numa_nodeset", "0"))
    assert "<memory mode='preferred' nodeset='0'/>" in vsh("dumpxml", "vm1").out
    assert vsh("numatune", "vm1", "--mode", "sideways").err == "error: Invalid mode: sideways\n"
    res = vsh("numatune", "vm1", "--nodeset", "63")
    assert res.err == "error: unsupported configuration: NUMA node 63 is unavailable\n"


def test_perf(vsh, define):
    define("vm1")
    out = vsh("perf", "vm1").out
    assert out.startswith("cmt            : disabled\nmbmt           : disabled\n") and out.count("disabled") == 22
    assert vsh("perf", "vm1", "--enable", "cpu_cycles,instructions").status == 0
    assert vsh("perf", "vm1", "--disable", "instructions").status == 0
    values = json.loads(vsh("perf", "vm1", "--json").out)
    assert (values["cpu_cycles"], values["instructions"]) == (True, False)
    assert "<event name='cpu_cycles' enabled='yes'/>" in vsh("dumpxml", "vm1").out
    assert vsh("perf", "vm1", "--enable", "bogus").err == "error: invalid argument: unknown perf event 'bogus'\n"


VIRTIO_MEM = ("<memory model='virtio-mem'><target><size unit='GiB'>1</size><node>0</node>"
              "<block unit='MiB'>2</block><requested unit='MiB'>0</requested></target></memory>")


def test_update_memory_device(vsh, define):
    define("vm1", memory="<maxMemory slots='2' unit='GiB'>4</maxMemory><memory unit='MiB'>1024</memory>",
           extra="<cpu><numa><cell id='0' cpus='0' memory='1' unit='GiB'/></numa></cpu>", devices=VIRTIO_MEM)
    assert vsh("update-memory-device", "vm1", "--requested-size", "512M", "--config").status == 0
    assert "<requested unit='KiB'>524288</requested>" in vsh("dumpxml", "vm1", "--inactive").out
    out = vsh("update-memory-device", "vm1", "--print-xml", "--node", "0", "--requested-size", "256M").out
    assert out.startswith("<memory model='virtio-mem'>") and "<requested unit='KiB'>262144</requested>" in out
    assert "524288" in vsh("dumpxml", "vm1", "--inactive").out       # --print-xml changes nothing
    assert vsh("update-memory-device", "vm1", "--node", "3").err == "error: no memory device found\n"
    define("vm2")
    assert vsh("update-memory-device", "vm2", "--requested-size", "1G").err == "error: no memory device found\n"
