"""The pyexpat XPath evaluator gives lxml's answers on its subset, and hands the rest to lxml."""
from __future__ import annotations

import itertools
import random
import subprocess
import sys

import pytest
from lxml import etree

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import xmlcond
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.xmlcond import (
    ENGINE_LXML, ENGINE_SUBSET, ConditionError, Document, NotInSubset, check, compile_subset, parse_document, select)

NS = {"vh": "urn:virthooks", "lib": "http://libosinfo.org/xmlns/libvirt/domain/1.0",
      "other": "urn:other", "dnsmasq": "http://libvirt.org/schemas/network/dnsmasq/1.0",
      "qemu": "http://libvirt.org/schemas/domain/qemu/1.0"}

WIN10 = b"""<?xml version='1.0' encoding='UTF-8'?>
<domain type='kvm' id='3' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>win10</name>
  <uuid>7c2b36ba-6a2c-4a45-9b0e-f6c7d1b9f1a0</uuid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://microsoft.com/win/10"/>
    </libosinfo:libosinfo>
    <vh:gpu xmlns:vh="urn:virthooks" mode="passthrough">nvidia</vh:gpu>
    <vh:pin xmlns:vh="urn:virthooks"><vh:cpus>2-5</vh:cpus><vh:cpus>8</vh:cpus></vh:pin>
    <gpu>not namespaced</gpu>
  </metadata>
  <memory unit='KiB'>8388608</memory>
  <vcpu placement='static'>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader><boot dev='hd'/></os>
  <features><acpi/><apic/><hyperv mode='custom'><relaxed state='on'/><vapic state='on'/></hyperv></features>
  <cpu mode='host-passthrough' check='none'><topology sockets='1' cores='2' threads='2'/></cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/win10.qcow2'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source dev='/dev/vg0/win10-data'/>
      <target dev='sdb' bus='sata'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='sdc' bus='sata'/><readonly/></disk>
    <interface type='bridge'>
      <mac address='52:54:00:6b:3c:58'/>
      <source bridge='br0'/>
      <model type='virtio'/>
    </interface>
    <interface type='network'><source network='default'/><model type='e1000e'/></interface>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='usb'><source><vendor id='0x046d'/><product id='0xc52b'/></source></hostdev>
    <graphics type='spice' autoport='yes'><listen type='address'/></graphics>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline><qemu:arg value='-fw_cfg'/></qemu:commandline>
  <seclabel type='dynamic' model='apparmor' relabel='yes'/>
</domain>
"""

DEFAULT_NS = b"""<domain xmlns='urn:default' type='kvm'><name>d</name>
<devices><disk type='file'/><vh:disk xmlns:vh='urn:virthooks' type='x'/></devices></domain>"""

NETWORK = b"""<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>default</name><forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>
  <bridge name='virbr0' stp='on' delay='0'/><ip address='192.168.122.1' netmask='255.255.255.0'>
  <dhcp><range start='192.168.122.2' end='192.168.122.254'/><host mac='52:54:00:6b:3c:58' name='win10' ip='192.168.122.10'/></dhcp></ip>
  <dnsmasq:options><dnsmasq:option value='dhcp-option=6,1.1.1.1'/></dnsmasq:options>
</network>"""

MIXED = b"""<a x='1' xml:lang='en'>t0<b>one<c>two</c>three</b><b y=''><![CDATA[cd&ata]]></b>
<b>&lt;x&gt; &amp; &#65;</b><b><b><b z='deep'>nest</b></b></b><d/><d><b/></d><!-- c --><?pi x?>t9</a>"""

DOCUMENTS = {"win10": WIN10, "default-ns": DEFAULT_NS, "network": NETWORK, "mixed": MIXED}

HAND_WRITTEN = [
    "/domain", "/domain/devices/hostdev", "/domain/devices/hostdev[@type='pci']",
    "/domain/devices/hostdev[@type=\"usb\"]", "/domain/devices/hostdev[@type='scsi']",
    "//interface[@type='bridge']", "//interface[source]",
    "//interface[model]", "/domain/devices/disk[@device='cdrom']", "/domain/devices/disk[readonly]",
    "/domain/devices/disk[2]", "/domain/devices/disk[3]", "/domain/devices/disk[4]", "/domain/devices/disk[last()]",
    "/domain/devices/disk[@device='disk'][2]", "/domain/devices/disk[2][@device='disk']",
    "/domain/devices/disk[2][@device='cdrom']", "/domain/devices/disk[@device='disk'][last()]",
    "/domain/metadata/vh:gpu", "/domain/metadata/vh:gpu[@mode='passthrough']", "/domain/metadata/vh:gpu[@mode]",
    "//vh:cpus", "/domain/metadata/vh:pin[vh:cpus='8']", "/domain/metadata/vh:pin[vh:cpus='2-5'][vh:cpus='8']",
    "/domain/metadata/vh:*", "/domain/metadata/*[@mode]", "/domain/metadata/gpu", "//gpu",
    "/domain/metadata/other:gpu", "//lib:os[@id='http://microsoft.com/win/10']", "/domain/name[.='x']",
    "/domain[name='win10']", "/domain[name='win1']", "/domain[@type='kvm'][@id='3']", "/domain[1]",
    "/domain[2]", "//*[@managed='yes']", "//source[address]", "//hostdev//address[@function='0x1']",
    "/domain//address", "//devices//model[@type='none']", "//model[@type='none'][1]", "/*", "/*/*[3]",
    "//*", "/domain/devices/*[last()]", "/domain/devices/*[1]", " /domain / devices / disk [ @device = 'disk' ] ",
    "//dnsmasq:option", "/network/ip/dhcp/host[@name='win10']", "/network/forward[@mode='nat']//port[@start]",
    "/domain/os/type[.='hvm']", "/domain/os[type='hvm']", "/domain/os[type='hvm ']", "/a[b='onetwothree']",
    "/a[b='cd&ata']", "/a[b='<x> & A']", "/a/b[@y='']", "/a/b[@y]", "//b[@z='deep']", "//b[b]", "//b[b][1]",
    "/a/b[1][c]", "/a/b[2][c]", "//d[b]", "//d[1]", "//d[2]", "/a[@xml:lang='en']", "/a[@xml:lang]",
    "/a[@lang]", "//b//b", "//b/b/b", "/a//b[2]", "//*[last()]", "//b[last()][@z]", "/domain[seclabel]",
    "/domain[qemu]", "/domain/devices/hostdev[@type='pci'][@managed='yes']",
    "/domain/devices/hostdev[source]",
]


def lxml_answer(data: bytes, expr: str, namespaces: dict) -> bool:
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    return bool(root.xpath(expr, namespaces=namespaces))


def ours(data: bytes, expr: str, namespaces: dict) -> bool:
    steps = compile_subset(expr, namespaces)        # raises if outside the subset: the test fails
    return bool(select(parse_document(data), steps))


def lxml_selection(data: bytes, expr: str, namespaces: dict) -> list:
    """Which elements lxml selects, as their numbers in document order."""
    root = etree.fromstring(data)
    number = {el: i for i, el in enumerate(e for e in root.iter() if isinstance(e.tag, str))}
    return sorted(number[el] for el in root.xpath(expr, namespaces=namespaces))


def our_selection(document, expr: str, namespaces: dict) -> list:
    number = {id(el): i - 1 for i, el in enumerate(xmlcond._self_and_descendants(document))}
    return sorted(number[id(el)] for el in select(document, compile_subset(expr, namespaces)))


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_hand_written_expressions_agree_with_lxml(name):
    data = DOCUMENTS[name]
    document = parse_document(data)
    disagreements = [(e, our_selection(document, e, NS), lxml_selection(data, e, NS)) for e in HAND_WRITTEN
                     if our_selection(document, e, NS) != lxml_selection(data, e, NS)]
    assert not disagreements                        # the same elements, not only the same truth value
    answers = {ours(data, e, NS) for e in HAND_WRITTEN}
    assert answers == {True, False} or name == "default-ns"     # the set probes both answers


def _names(data: bytes) -> tuple:
    root = etree.fromstring(data)
    tags, attrs, values, texts = set(), set(), set(), set()
    prefix_of = {uri: p for p, uri in NS.items()}
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        q = etree.QName(el)
        if q.namespace is None:
            tags.add(q.localname)
        elif q.namespace in prefix_of:
            tags.add("%s:%s" % (prefix_of[q.namespace], q.localname))
        for key, value in el.attrib.items():
            if not key.startswith("{"):
                attrs.add(key)
                values.add(value)
        if el.text and el.text.strip() and len(el) == 0:
            texts.add(el.text)
    return sorted(tags), sorted(attrs), sorted(values), sorted(texts)


def random_expression(rng: random.Random, data: bytes) -> str:
    tags, attrs, values, texts = _names(data)
    tags = tags + ["*", "nope", "vh:*"]
    steps = []
    for _step in range(rng.randint(1, 4)):
        step = rng.choice(("/", "//")) + rng.choice(tags)
        for _predicate in range(rng.choice((0, 0, 1, 1, 2, 3))):
            kind = rng.randrange(7)
            if kind == 0:
                step += "[@%s]" % rng.choice(attrs + ["nope"])
            elif kind == 1:
                step += "[@%s='%s']" % (rng.choice(attrs), rng.choice(values + ["nope"]))
            elif kind == 2:
                step += "[%s]" % rng.choice(tags)
            elif kind == 3:
                step += "[%s='%s']" % (rng.choice(tags), rng.choice(texts + ["nope"]))
            elif kind == 4:
                step += "[%d]" % rng.randint(0, 4)
            elif kind == 5:
                step += rng.choice(("[last()]", "[.='%s']" % rng.choice(texts + ["nope"])))
            else:
                step += '[@%s="%s"]' % (rng.choice(attrs), rng.choice(values))
        steps.append(step)
    return "".join(steps)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_random_expressions_agree_with_lxml(name):
    data = DOCUMENTS[name]
    rng = random.Random(11 + len(name))
    document = parse_document(data)
    seen = {True: 0, False: 0}
    for _round in range(1500):
        expr = random_expression(rng, data)
        mine = our_selection(document, expr, NS)
        assert mine == lxml_selection(data, expr, NS), expr
        assert bool(mine) == lxml_answer(data, expr, NS) == Document(data).evaluate(expr, NS)
        seen[bool(mine)] += 1
    assert min(seen.values()) > 50, seen            # both answers were probed


@pytest.mark.parametrize("expr", [
    "count(/domain/devices/disk) >= 2", "/domain/devices/disk[@device!='cdrom']", "/domain/devices/disk | //x",
    "/domain/devices/disk[@type='file' and @device='disk']", "//disk[starts-with(@device, 'c')]",
    "/domain/devices/..", "/domain/descendant::disk", "domain/devices", "name", "/domain/devices/text()",
    "/domain/devices/disk[source/@file]", "/domain/devices/disk[position()=1]", "/", "/domain/", "//",
    "/domain[. = ]", "/domain/devices/disk[1.5]", "/domain/@type", "/domain/devices/disk[-1]", "///domain",
    "/domain/devices/node()", "/domain[last ( )]", "/vh :gpu", "/domain[@*]",
])
def test_outside_the_subset_goes_to_lxml(expr):
    with pytest.raises(NotInSubset):
        compile_subset(expr, NS)
    try:
        expected = lxml_answer(WIN10, expr, NS)
    except etree.XPathError:
        with pytest.raises(ConditionError):
            Document(WIN10).evaluate(expr, NS)
        with pytest.raises(ConditionError, match="not valid XPath"):
            check(expr, NS)
        return
    assert Document(WIN10).evaluate(expr, NS) == expected
    assert check(expr, NS) == ENGINE_LXML


def test_without_lxml_outside_the_subset_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(xmlcond, "_lxml", lambda: None)
    with pytest.raises(ConditionError, match="needs lxml"):
        check("count(//disk) > 1", {})
    with pytest.raises(ConditionError, match="needs lxml"):
        Document(WIN10).evaluate("count(//disk) > 1", {})
    assert check("//disk[@device='cdrom']", {}) == ENGINE_SUBSET
    assert Document(WIN10).evaluate("//disk[@device='cdrom']", {}) is True


def test_subset_expressions_never_import_lxml(monkeypatch):
    def boom():
        raise AssertionError("lxml looked up")
    monkeypatch.setattr(xmlcond, "_lxml", boom)
    assert check("/domain/devices/hostdev[@type='pci']", {}) == ENGINE_SUBSET
    document = Document(WIN10)
    assert document.evaluate("/domain/devices/hostdev[@type='pci']", {}) is True
    assert document.evaluate("/domain/metadata/vh:gpu[@mode='x']", NS) is False


def test_undeclared_prefix_is_an_error():
    with pytest.raises(ConditionError, match="prefix 'nope' is not declared"):
        check("/domain/nope:gpu", {})
    with pytest.raises(ConditionError, match="prefix 'nope' is not declared"):
        Document(WIN10).evaluate("/domain/nope:gpu", {})
    with pytest.raises(etree.XPathError):          # lxml agrees that it is an error
        lxml_answer(WIN10, "/domain/nope:gpu", {})


def test_unprefixed_names_are_in_no_namespace_as_in_xpath():
    assert Document(DEFAULT_NS).evaluate("/domain", {}) is False
    assert Document(DEFAULT_NS).evaluate("/d:domain/d:devices/d:disk", {"d": "urn:default"}) is True
    assert lxml_answer(DEFAULT_NS, "/domain", {}) is False


@pytest.mark.parametrize("data", [b"", b"<domain>", b"<a></b>", b"<a x='1' x='2'/>", b"not xml", b"<a/><b/>",
                                  b"\xff\xfe<\x00", b"<a>&undefined;</a>", b"<?xml version='1.0'?>"])
def test_malformed_xml_is_a_condition_error(data):
    with pytest.raises(ConditionError, match="not well-formed"):
        Document(data).evaluate("/domain", {})


def test_doctype_goes_to_lxml_and_entities_are_not_expanded(monkeypatch):
    bomb = (b"<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>"
            b"<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]><domain><name>&c;</name></domain>")
    with pytest.raises(xmlcond._Doctype):
        parse_document(bomb)
    assert Document(bomb).evaluate("/domain/name", {}) is True          # through lxml
    monkeypatch.setattr(xmlcond, "_lxml", lambda: None)
    with pytest.raises(ConditionError, match="needs lxml.*DOCTYPE"):
        Document(bomb).evaluate("/domain/name", {})


def test_deep_and_wide_documents_stay_linear():
    deep = b"<a>" * 5000 + b"</a>" * 5000
    assert Document(deep).evaluate("//a//a//a//a//a[@x]", {}) is False
    wide = b"<r>" + b"<a><b/></a>" * 20000 + b"</r>"
    assert Document(wide).evaluate("//a[b][last()]", {}) is True


def test_the_dispatcher_python_evaluates_without_importing_heavy_modules(tmp_path):
    """In a fresh -IS interpreter, a subset condition imports neither lxml nor xml.etree nor re."""
    import ansible_collections
    root = list(ansible_collections.__path__)[0].rsplit("/ansible_collections", 1)[0]
    code = ("import sys; sys.path[:0] = [%r]\n"
            "from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.xmlcond import Document\n"
            "assert Document(sys.stdin.buffer.read()).evaluate(\"/domain/devices/hostdev[@type='pci']\", {})\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('lxml', 're', 'xml'))))" % root)
    proc = subprocess.run([sys.executable, "-IS", "-c", code], input=WIN10, capture_output=True, check=True)
    assert proc.stdout.decode().split() == []


def test_every_pair_of_subset_predicates_agrees_on_the_mixed_document():
    preds = ["[@y]", "[@z='deep']", "[b]", "[c='two']", "[1]", "[2]", "[last()]", "[*]", "[.='nest']", "[.='onetwothree']"]
    for first, second in itertools.product(preds, repeat=2):
        for path in ("/a/b", "//b", "/a//b"):
            expr = path + first + second
            assert our_selection(parse_document(MIXED), expr, {}) == lxml_selection(MIXED, expr, {}), expr


def _lxml_mapped_script(box, name):
    """A script that records whether its parent (the dispatcher) has lxml's library mapped."""
    return box.script(name, "grep -c 'lxml' /proc/$PPID/maps > %s/%s.lxml || true\n" % (box.seen, name))


def test_the_dispatcher_loads_lxml_only_for_expressions_outside_the_subset(venv_sandbox):
    box = venv_sandbox                                  # its Python has lxml
    _lxml_mapped_script(box, "subset")
    _lxml_mapped_script(box, "full")
    _lxml_mapped_script(box, "never")
    box.deploy([{"name": "subset", "script": "scripts/subset", "operations": ["prepare"],
                 "xpath": "/domain/metadata/vh:gpu[@mode='passthrough']", "namespaces": {"vh": "urn:virthooks"}},
                {"name": "never", "script": "scripts/never", "operations": ["prepare"],
                 "xpath": "//hostdev[@type='scsi']"},
                {"name": "full", "script": "scripts/full", "operations": ["start"],
                 "xpath": "count(/domain/devices/disk) >= 2"}])
    assert box.fire("qemu", "win10", "prepare", "begin", stdin=WIN10).rc == 0
    assert box.fire("qemu", "win10", "start", "begin", stdin=WIN10).rc == 0
    assert (box.seen / "subset.lxml").read_text().strip() == "0"
    assert (box.seen / "full.lxml").read_text().strip() != "0"
    assert not (box.seen / "never.lxml").exists()
    skipped = [s for r in box.records() for s in r["scripts"] if s["status"] == "skipped"]
    assert [s["name"] for s in skipped] == ["never"]


def test_a_subset_condition_on_malformed_stdin_is_a_named_failure(sandbox):
    sandbox.script("gpu", "exit 0\n")
    sandbox.deploy([{"name": "gpu", "script": "scripts/gpu", "xpath": "/domain/devices/hostdev"}])
    fired = sandbox.fire("qemu", "win10", "prepare", "begin", stdin=b"<domain><devices>")
    assert fired.rc == 1 and "gpu" in fired.stderr and "not well-formed" in fired.stderr, fired
