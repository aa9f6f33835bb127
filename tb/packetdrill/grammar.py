"""The packetdrill script language (IPv4 TCP and UDP), parsed into a list of events.

A script is a sequence of lines ``TIME ACTION``; this module turns it into dataclasses and
does nothing else (no clock, no sockets). What is understood, with packetdrill's meaning:

Times (seconds, microsecond resolution)::

    0.100        absolute, from the start of the script
    +.1          relative to the previous event
    *            any time
    0.1~0.2      an absolute range; +0.1~+0.2 a relative range
    +0...0.100   a blocking syscall: it starts at +0 and must return by +0.100
                 (the end is relative when the start is)

Packets (``<`` injected into the stack under test, ``>`` expected from it)::

    < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
    > S. 0:0(0) ack 1 <...>            an expected <...> skips the option check
    > P. 1:101(100) ack 1              no win: the window is not checked
    < udp (100)                        a UDP datagram with 100 payload bytes

Flags are letters from ``S P F R U E W`` plus ``.`` for ACK, or ``-`` for none. Options:
``nop``, ``eol``, ``mss N``, ``wscale N``, ``sackOK``, ``sack A:B ...``, ``TS val N ecr N``,
``FO COOKIE`` / ``FO`` (TCP Fast Open, kind 34) and ``FOEXP COOKIE`` (the experimental kind 254
with magic 0xF989). IP fields in parentheses after the direction: ``< (tos 0x2) S ...``,
``> (ttl 64) ...`` (``tos``, ``ttl``, ``ecn``: checked on ``>``, set on ``<``). ICMP:
``< icmp unreachable port_unreachable [SEQ:END(LEN)]`` sends an ICMP error quoting the
connection's TCP header (types and codes as packetdrill names them).

Syscalls: ``name(args) = RESULT [ERRNO (text)] [(note)]``, where an argument is ``...``, an
integer, a symbolic constant, ``A|B``, ``[v, ...]``, ``{field=value, ...}`` (a field may be
``name(N)=value`` as in ``msg_iov(1)=[...]``, or positional as in an iovec ``{..., 100}``),
``NULL`` or a string. RESULT may be a constant or an errno name used as a value.

Shell commands in backquotes (`Shell`, optionally after a time) and ``%{ ... }%`` Python
blocks (`Code`, optionally after a time) are events: the runner executes them (shell lines
only on the linux backend). ``#ifdef NAME`` / ``#ifndef`` / ``#else`` / ``#endif`` keep or
drop lines by the names defined with ``-D NAME[=VALUE]`` (`parse`'s `defines`). Lines
``--name=value`` before the first event set an option (``--tolerance_usecs``, ``--mss``,
``--mtu``). Comments: ``//``, ``/* */``.

Anything else is an error naming the file and line (`ScriptError`).
"""

import re
from dataclasses import dataclass, field

__all__ = [
    "ScriptError", "Time", "Option", "Packet", "Syscall", "Skipped", "Shell", "Code", "Script",
    "Symbol", "Struct", "Flags", "Null", "parse", "parse_file",
]


class ScriptError(Exception):
    """A script line that is not valid packetdrill (as far as this runner implements it)."""

    def __init__(self, path: str, line: int, message: str):
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}")


@dataclass(frozen=True)
class Time:
    """When an event happens. `kind` is "abs", "rel" or "any"; `end` is a range's upper end."""
    kind: str
    start: float = 0.0
    end: float | None = None

    def __str__(self):
        if self.kind == "any":
            return "*"
        sign = "+" if self.kind == "rel" else ""
        text = f"{sign}{self.start:g}"
        if self.end is not None:
            text += f"~{sign}{self.end:g}"
        return text


@dataclass(frozen=True)
class Option:
    """One TCP option: `kind` is "nop", "eol", "mss", "wscale", "sackOK", "sack", "TS" or "raw"
    (not packetdrill's: ``raw 0800`` sends the bytes given in hex as they are, so a script can
    send a malformed option)."""
    kind: str
    values: tuple = ()

    def __str__(self):
        if self.kind == "TS":
            return f"TS val {self.values[0]} ecr {self.values[1]}"
        if self.kind == "sack":
            return "sack " + " ".join(f"{a}:{b}" for a, b in self.values)
        if self.kind in ("FO", "FOEXP") and not self.values[0]:
            return self.kind
        return " ".join([self.kind, *map(str, self.values)])


@dataclass
class Packet:
    """A ``<`` (inbound) or ``>`` (outbound) packet line."""
    line: int
    time: Time
    direction: str                  # "<" or ">"
    proto: str                      # "tcp" or "udp"
    flags: str = ""                 # as written, e.g. "S." ("." is ACK)
    seq: int = 0                    # relative start sequence number
    end_seq: int = 0
    length: int = 0                 # payload bytes
    ack: int | None = None
    win: int | None = None
    urg: int | None = None
    options: list[Option] | None = field(default_factory=list)   # None: <...>, skip check
    text: str = ""
    ip: dict = field(default_factory=dict)   # (tos N) (ttl N) (ecn X): "tos", "ttl", "ecn"
    icmp: tuple | None = None        # proto "icmp": (type name, code name)

    @property
    def flag_set(self) -> frozenset:
        return frozenset(self.flags)


@dataclass(frozen=True)
class Symbol:
    """A symbolic constant in a syscall line (``SOCK_STREAM``, ``O_NONBLOCK``, ...)."""
    name: str

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class Flags:
    """``A|B|...``: the bitwise or of its terms."""
    terms: tuple

    def __str__(self):
        return "|".join(map(str, self.terms))


@dataclass
class Struct:
    """``{name=value, ...}`` (poll's pollfd, linger, ...)."""
    fields: dict

    def __str__(self):
        return "{" + ", ".join(f"{k}={v}" for k, v in self.fields.items()) + "}"


@dataclass
class Syscall:
    """A socket call with its expected result; `end` set means a blocking call."""
    line: int
    time: Time
    name: str
    args: list
    result: object                  # int, or Symbol/Flags for fcntl results
    errno: str | None = None
    end: float | None = None        # blocking: latest return time (relative if time is)
    text: str = ""


class _NullType:
    """``NULL`` as a syscall argument (a null pointer)."""
    def __repr__(self):
        return "NULL"

    __str__ = __repr__


Null = _NullType()


@dataclass
class Skipped:
    """A line a backend did not execute (a shell command on the model), for the report."""
    line: int
    kind: str                       # "shell" or "python"
    text: str


@dataclass
class Shell:
    """A backquoted shell command, run at its time inside the stack's namespace."""
    line: int
    time: Time
    command: str
    text: str = ""


@dataclass
class Code:
    """A ``%{ ... }%`` Python block, run at its time with the socket's tcp_info fields."""
    line: int
    time: Time
    source: str
    text: str = ""


@dataclass
class Script:
    path: str
    events: list
    options: dict = field(default_factory=dict)
    defines: dict = field(default_factory=dict)

    @property
    def skipped(self) -> list[Skipped]:
        return [e for e in self.events if isinstance(e, Skipped)]

    @property
    def shell_lines(self) -> list[Shell]:
        return [e for e in self.events if isinstance(e, Shell)]


# --- lexical helpers ---------------------------------------------------------------

_NUM = r"(?:\d+\.\d*|\.\d+|\d+)"
_TIME_RE = re.compile(
    rf"^(?P<time>\*|\+?{_NUM}(?:~\+?{_NUM})?)(?:\.\.\.(?P<end>\+?{_NUM}))?(?=\s|$|`)\s*(?P<rest>.*)$",
    re.S)
_FLAGS_RE = re.compile(r"^(?:[SPFRUEW.]+|-)$")
_SEQ_RE = re.compile(r"^(\d+):(\d+)\((\d+)\)$")
_ERRNO_RE = re.compile(r"^(E[A-Z0-9]+)(?:\s*\((.*)\))?\s*$", re.S)
_TOKEN_RE = re.compile(r"""\s*(?:(?P<ell>\.\.\.)|(?P<num>-?0[xX][0-9a-fA-F]+|-?\d+)|
    (?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>[\[\]{}(),=|]))""", re.X)


def _strip_comments(text: str) -> str:
    """Remove ``/* */`` and ``//`` comments, keeping line breaks (so line numbers hold)."""
    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))

    out, i = [], 0
    # backquoted shell commands may legitimately contain "//" (paths): keep them intact
    pattern = re.compile(r"`[^`]*`|%\{.*?\}%|/\*.*?\*/|//[^\n]*", re.S)
    for match in pattern.finditer(text):
        out.append(text[i:match.start()])
        token = match.group(0)
        out.append(token if token[0] in "`%" else blank(match))
        i = match.end()
    out.append(text[i:])
    return "".join(out)


def _parse_time(text: str) -> Time:
    if text == "*":
        return Time("any")
    lo, _, hi = text.partition("~")
    rel = lo.startswith("+")
    if hi and hi.startswith("+") != rel:
        raise ValueError(f"time range {text!r} mixes absolute and relative ends")
    return Time("rel" if rel else "abs", float(lo.lstrip("+")), float(hi.lstrip("+")) if hi else None)


class _Tokens:
    def __init__(self, text: str):
        self.items, pos = [], 0
        text = text.strip()
        while pos < len(text):
            match = _TOKEN_RE.match(text, pos)
            if match is None or match.end() == pos:
                raise ValueError(f"unexpected {text[pos:pos + 12]!r}")
            kind = match.lastgroup
            self.items.append((kind, match.group(kind)))
            pos = match.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0

    def peek(self):
        return self.items[self.i] if self.i < len(self.items) else (None, None)

    def take(self, value=None):
        kind, text = self.peek()
        if kind is None:
            raise ValueError("line ends too early")
        if value is not None and text != value:
            raise ValueError(f"expected {value!r}, found {text!r}")
        self.i += 1
        return kind, text

    def expression(self):
        terms = [self.term()]
        while self.peek()[1] == "|":
            self.take("|")
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else Flags(tuple(terms))

    def term(self):
        kind, text = self.take()
        if kind == "ell":
            return ...
        if kind == "num":
            return int(text, 0)
        if kind == "name":
            return Null if text == "NULL" else Symbol(text)
        if kind == "str":
            return text[1:-1]
        if text == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.expression())
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("]")
            return items
        if text == "{":
            fields, position = {}, 0
            while self.peek()[1] != "}":
                kind, name = self.peek()
                after = self.items[self.i + 1][1] if self.i + 1 < len(self.items) else None
                if kind == "name" and after in ("=", "("):
                    self.take()
                    if after == "(":            # msg_iov(1)=[...]: the count is the list's
                        self.take("(")
                        self.expression()
                        self.take(")")
                    self.take("=")
                    fields[name] = self.expression()
                else:                           # positional: an iovec {..., 100}
                    fields[position] = self.expression()
                position += 1
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
            return Struct(fields)
        raise ValueError(f"unexpected {text!r}")


def _parse_options(text: str) -> list[Option] | None:
    text = text.strip()
    if text == "...":
        return None
    options = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        words = item.split()
        kind = words[0]
        try:
            if kind in ("nop", "eol", "sackOK") and len(words) == 1:
                options.append(Option(kind))
            elif kind in ("mss", "wscale") and len(words) == 2:
                options.append(Option(kind, (int(words[1], 0),)))
            elif kind == "raw" and len(words) == 2 and bytes.fromhex(words[1]):
                options.append(Option("raw", (words[1].lower(),)))
            elif kind == "TS" and len(words) == 5 and words[1] == "val" and words[3] == "ecr":
                options.append(Option("TS", (int(words[2]), int(words[4]))))
            elif kind in ("FO", "FOEXP") and len(words) <= 2:
                cookie = words[1].lower() if len(words) == 2 else ""
                bytes.fromhex(cookie)
                options.append(Option(kind, (cookie,)))
            elif kind == "sack" and len(words) >= 2:
                blocks = []
                for block in words[1:]:
                    a, b = block.split(":")
                    blocks.append((int(a), int(b)))
                options.append(Option("sack", tuple(blocks)))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"unknown or malformed TCP option {item!r}") from None
    return options


_ECN = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3, "ect01": None}
_IP_INFO_RE = re.compile(r"^(?:\((?P<paren>[^)]*)\)|\[(?P<bracket>[^\]]*)\])\s*")
ICMP_TYPES = {"unreachable": 3, "source_quench": 4, "time_exceeded": 11}
ICMP_CODES = {"net_unreachable": 0, "host_unreachable": 1, "protocol_unreachable": 2,
              "port_unreachable": 3, "frag_needed": 4, "source_route_failed": 5,
              "net_unknown": 6, "host_unknown": 7, "source_host_isolated": 8,
              "net_prohibited": 9, "host_prohibited": 10, "net_unreachable_for_tos": 11,
              "host_unreachable_for_tos": 12, "packet_filtered": 13}


def _parse_ip_info(text: str) -> dict:
    """``tos 0x2``, ``ttl 64``, ``ect0``...: packetdrill's (ip_info) or [ip_info]."""
    info = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        words = item.split()
        if len(words) == 2 and words[0] in ("tos", "ttl", "flowlabel"):
            info[words[0]] = int(words[1], 0)
        elif len(words) == 1 and words[0] in _ECN:
            info["ecn"] = words[0]
        else:
            raise ValueError(f"unknown IP field {item!r} (tos N, ttl N, noecn, ect0, ect1, ect01, ce)")
    return info


def _parse_icmp(pkt: Packet, words: list[str]) -> Packet:
    """``icmp TYPE [CODE] [mtu N]``, after an optional ``[SEQ:END(LEN)]`` (already taken)."""
    if len(words) < 2 or words[1] not in ICMP_TYPES:
        raise ValueError(f"an ICMP line is 'icmp TYPE [CODE] [mtu N]', TYPE one of {', '.join(ICMP_TYPES)}")
    code = "net_unreachable"
    rest = words[2:]
    if rest and rest[0] != "mtu":
        code = rest.pop(0)
        if code not in ICMP_CODES:
            raise ValueError(f"unknown ICMP code {code!r}")
    if rest:
        if len(rest) != 2 or rest[0] != "mtu":
            raise ValueError(f"unexpected {' '.join(rest)!r} after the ICMP code")
        pkt.win = int(rest[1])          # the next-hop MTU of frag_needed
    pkt.proto, pkt.icmp, pkt.options = "icmp", (words[1], code), []
    return pkt


def _parse_packet(line: int, time: Time, direction: str, rest: str) -> Packet:
    pkt = Packet(line, time, direction, "tcp", text=f"{direction} {rest}")
    while (info := _IP_INFO_RE.match(rest)) and not _SEQ_RE.match(f"{info['bracket']}".strip()):
        pkt.ip.update(_parse_ip_info(info["paren"] if info["paren"] is not None else info["bracket"]))
        rest = rest[info.end():]
    echoed = re.match(r"^\[\s*(\d+):(\d+)\((\d+)\)\s*\]\s*(?=icmp\b)", rest)
    if echoed:
        pkt.seq, pkt.end_seq, pkt.length = (int(g) for g in echoed.groups())
        rest = rest[echoed.end():]
    if rest.split()[:1] == ["icmp"]:
        if direction == ">":
            raise ValueError("only inbound ('<') ICMP lines are supported")
        return _parse_icmp(pkt, rest.split())
    opt_text = None
    if "<" in rest:
        head, _, tail = rest.partition("<")
        if not tail.rstrip().endswith(">"):
            raise ValueError("TCP options must end with '>'")
        rest, opt_text = head, tail.rstrip()[:-1]
    words = rest.split()
    if words and words[0] == "udp":
        match = re.fullmatch(r"\((\d+)\)", "".join(words[1:]))
        if match is None or opt_text is not None:
            raise ValueError("a UDP packet is written 'udp (LENGTH)'")
        pkt.proto, pkt.length = "udp", int(match[1])
        pkt.options = []
        return pkt
    if len(words) < 2:
        raise ValueError("a TCP packet needs flags and SEQ:END(LEN)")
    if not _FLAGS_RE.match(words[0]):
        raise ValueError(f"bad TCP flags {words[0]!r} (letters S P F R U E W and '.')")
    pkt.flags = "" if words[0] == "-" else words[0]
    match = _SEQ_RE.match(words[1])
    if match is None:
        raise ValueError(f"bad sequence {words[1]!r}: expected START:END(LENGTH)")
    pkt.seq, pkt.end_seq, pkt.length = (int(g) for g in match.groups())
    if pkt.end_seq - pkt.seq != pkt.length:
        raise ValueError(f"sequence {words[1]!r}: END - START must equal LENGTH")
    i = 2
    while i < len(words):
        key = words[i]
        if key not in ("ack", "win", "urg") or i + 1 >= len(words):
            raise ValueError(f"unexpected {key!r} in packet (expected ack N, win N, urg N, <options>)")
        try:
            value = int(words[i + 1], 0)
        except ValueError:
            raise ValueError(f"{key} needs a number, not {words[i + 1]!r}") from None
        setattr(pkt, key, value)
        i += 2
    if "." in pkt.flags and pkt.ack is None:
        raise ValueError("an ACK ('.') packet needs 'ack N'")
    if pkt.ack is not None and "." not in pkt.flags:
        raise ValueError("'ack N' on a packet without the ACK flag '.'")
    pkt.options = [] if opt_text is None else _parse_options(opt_text)
    if direction == "<" and pkt.options is None:
        raise ValueError("<...> is only allowed on expected ('>') packets")
    return pkt


def _parse_syscall(line: int, time: Time, end: float | None, rest: str) -> Syscall:
    match = re.match(r"^([a-z_][a-z_0-9]*)\s*\(", rest)
    if match is None:
        raise ValueError(f"expected a packet (< or >) or a syscall, found {rest[:20]!r}")
    name = match[1]
    depth, i = 0, match.end() - 1
    while i < len(rest):
        depth += {"(": 1, ")": -1}.get(rest[i], 0)
        if depth == 0:
            break
        i += 1
    else:
        raise ValueError("unbalanced parentheses in syscall arguments")
    tokens = _Tokens(rest[match.end():i])
    args = []
    while tokens.peek()[0] is not None:
        args.append(tokens.expression())
        if tokens.peek()[0] is not None:
            tokens.take(",")
    after = rest[i + 1:].strip()
    if not after.startswith("="):
        raise ValueError("a syscall needs '= RESULT'")
    after = after[1:].strip()
    value_match = re.match(r"^(-?0[xX][0-9a-fA-F]+|-?\d+|[A-Za-z_][A-Za-z_0-9|]*)", after)
    if value_match is None:
        raise ValueError(f"bad result {after!r}")
    text = value_match[1]
    if re.fullmatch(r"-?0[xX][0-9a-fA-F]+|-?\d+", text):
        result = int(text, 0)
    else:
        parts = tuple(Symbol(p) for p in text.split("|"))
        result = parts[0] if len(parts) == 1 else Flags(parts)
    tail = after[value_match.end():].strip()
    errno = None
    if result == -1:
        err_match = _ERRNO_RE.match(tail)
        if err_match is None:
            raise ValueError("a result of -1 needs an errno name, e.g. '-1 EAGAIN (Resource ...)'")
        errno = err_match[1]
    elif tail and not re.fullmatch(r"\(.*\)", tail, re.S):
        raise ValueError(f"unexpected {tail!r} after the result")
    return Syscall(line, time, name, args, result, errno, end, rest.strip())


def _preprocess(text: str, path: str, defines: dict) -> str:
    """Blank the lines that ``#ifdef``/``#ifndef``/``#else``/``#endif`` drop (line numbers hold)."""
    out, stack = [], []            # stack: (keeping this branch, line of the #if)
    for number, line in enumerate(text.split("\n"), 1):
        words = line.split()
        keep = all(k for k, _ in stack)
        if words and words[0] in ("#ifdef", "#ifndef"):
            if len(words) != 2:
                raise ScriptError(path, number, f"{words[0]} needs one name")
            stack.append(((words[1] in defines) == (words[0] == "#ifdef"), number))
            line = ""
        elif words and words[0] == "#else":
            if not stack:
                raise ScriptError(path, number, "#else without #ifdef")
            stack[-1] = (not stack[-1][0], stack[-1][1])
            line = ""
        elif words and words[0] == "#endif":
            if not stack:
                raise ScriptError(path, number, "#endif without #ifdef")
            stack.pop()
            line = ""
        elif not keep:
            line = ""
        out.append(line)
    if stack:
        raise ScriptError(path, stack[-1][1], "#ifdef without #endif")
    return "\n".join(out)


def parse(text: str, path: str = "<script>", defines: dict | None = None) -> Script:
    """Parse a whole script; raise `ScriptError` (with the line number) on the first bad line.

    `defines` are the ``-D NAME=VALUE`` names: ``#ifdef`` tests them, and a syscall argument
    or result written as NAME takes VALUE."""
    defines = dict(defines or {})
    text = _strip_comments(_preprocess(text, path, defines))
    script = Script(path, [], defines=defines)
    # split into logical lines: a %{ }% block or a backquoted command may span lines
    line, chunks = 1, []
    pattern = re.compile(r"%\{.*?\}%|`[^`]*`|[^\n`%]+|%|\n", re.S)
    current, start_line = [], 1
    for match in pattern.finditer(text):
        token = match.group(0)
        if token == "\n":
            chunks.append((start_line, "".join(current)))
            current = []
            line += 1
            start_line = line
            continue
        current.append(token)
        line += token.count("\n")
    chunks.append((start_line, "".join(current)))
    seen_event = False
    for number, chunk in chunks:
        chunk = chunk.strip()
        if not chunk:
            continue
        try:
            if chunk.startswith("%{"):
                script.events.append(_code(number, Time("rel", 0.0), chunk))
                continue
            if chunk.startswith("`"):
                script.events.append(_shell(number, Time("rel", 0.0), chunk))
                continue
            if chunk.startswith("--"):
                if seen_event:
                    raise ValueError("options (--name=value) must come before the first event")
                key, eq, value = chunk[2:].partition("=")
                if not eq or not re.fullmatch(r"[a-z_]+", key):
                    raise ValueError(f"bad option line {chunk!r}: expected --name=value")
                script.options[key] = value.strip()
                continue
            match = _TIME_RE.match(chunk)
            if match is None:
                raise ValueError(f"a line must start with a time (0.1, +0.1, *, a~b), not {chunk[:20]!r}")
            time = _parse_time(match["time"])
            end = match["end"]
            rest = match["rest"].strip()
            seen_event = True
            if end is not None:
                if time.kind == "any" or time.end is not None:
                    raise ValueError("a blocking call's start must be a plain time")
                if end.startswith("+"):
                    raise ValueError("write a blocking call as +START...END or START...END")
                end = float(end)
            if rest.startswith("`") or rest.startswith("%{"):
                if end is not None:
                    raise ValueError("only a syscall can block ('...')")
                make = _shell if rest.startswith("`") else _code
                script.events.append(make(number, time, rest))
            elif rest[:1] in ("<", ">"):
                if end is not None:
                    raise ValueError("only a syscall can block ('...')")
                script.events.append(_parse_packet(number, time, rest[0], rest[1:].strip()))
            else:
                script.events.append(_parse_syscall(number, time, end, rest))
        except ValueError as err:
            raise ScriptError(path, number, str(err)) from None
    if not any(isinstance(e, (Packet, Syscall)) for e in script.events):
        raise ScriptError(path, 1, "the script has no events")
    return script


def _shell(line: int, time: Time, text: str) -> Shell:
    if not text.endswith("`") or len(text) < 2:
        raise ValueError("unterminated shell command")
    return Shell(line, time, text[1:-1].strip(), text)


def _code(line: int, time: Time, text: str) -> Code:
    if not text.endswith("}%"):
        raise ValueError("unterminated %{ Python block")
    import textwrap
    source = textwrap.dedent(text[2:-2].strip("\n"))
    try:
        compile(source, f"line {line}", "exec")
    except SyntaxError as err:
        raise ValueError(f"Python block: {err.msg} (block line {err.lineno})") from None
    return Code(line, time, source, text)


def parse_file(path, defines: dict | None = None) -> Script:
    with open(path) as f:
        return parse(f.read(), str(path), defines)
