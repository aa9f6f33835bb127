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

Flags are letters from ``S P F R U E W`` plus ``.`` for ACK. Options: ``nop``, ``eol``,
``mss N``, ``wscale N``, ``sackOK``, ``sack A:B ...``, ``TS val N ecr N``.

Syscalls: ``name(args) = RESULT [ERRNO (text)] [(note)]``, where an argument is ``...``, an
integer, a symbolic constant, ``A|B``, ``[v, ...]``, ``{field=value, ...}`` or a string.

Shell commands in backquotes and ``%{ ... }%`` Python blocks are kept as `Skipped` events:
this runner does not execute them, and says so in its report. Lines ``--name=value`` before
the first event set an option (``--tolerance_usecs``, ``--mss``). Comments: ``//``, ``/* */``.

Anything else is an error naming the file and line (`ScriptError`).
"""

import re
from dataclasses import dataclass, field

__all__ = [
    "ScriptError", "Time", "Option", "Packet", "Syscall", "Skipped", "Script", "Symbol",
    "Struct", "Flags", "parse", "parse_file",
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


@dataclass
class Skipped:
    """A line this runner does not execute (shell command, Python block)."""
    line: int
    kind: str                       # "shell" or "python"
    text: str


@dataclass
class Script:
    path: str
    events: list
    options: dict = field(default_factory=dict)

    @property
    def skipped(self) -> list[Skipped]:
        return [e for e in self.events if isinstance(e, Skipped)]


# --- lexical helpers ---------------------------------------------------------------

_NUM = r"(?:\d+\.\d*|\.\d+|\d+)"
_TIME_RE = re.compile(
    rf"^(?P<time>\*|\+?{_NUM}(?:~\+?{_NUM})?)(?:\.\.\.(?P<end>\+?{_NUM}))?(?=\s|$|`)\s*(?P<rest>.*)$",
    re.S)
_FLAGS_RE = re.compile(r"^[SPFRUEW.]+$")
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
            return Symbol(text)
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
            fields = {}
            while self.peek()[1] != "}":
                _, name = self.take()
                self.take("=")
                fields[name] = self.expression()
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


def _parse_packet(line: int, time: Time, direction: str, rest: str) -> Packet:
    pkt = Packet(line, time, direction, "tcp", text=f"{direction} {rest}")
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
    pkt.flags = words[0]
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


def parse(text: str, path: str = "<script>") -> Script:
    """Parse a whole script; raise `ScriptError` (with the line number) on the first bad line."""
    text = _strip_comments(text)
    script = Script(path, [])
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
                if not chunk.endswith("}%"):
                    raise ValueError("unterminated %{ Python block")
                script.events.append(Skipped(number, "python", chunk))
                continue
            if chunk.startswith("`"):
                if not chunk.endswith("`"):
                    raise ValueError("unterminated shell command")
                script.events.append(Skipped(number, "shell", chunk))
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
            if rest.startswith("`"):
                if end is not None or not rest.endswith("`"):
                    raise ValueError("malformed shell command line")
                script.events.append(Skipped(number, "shell", rest))
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


def parse_file(path) -> Script:
    with open(path) as f:
        return parse(f.read(), str(path))
