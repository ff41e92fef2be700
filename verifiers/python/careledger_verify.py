#!/usr/bin/env python3
"""A careledger verifier written from docs/hash-format.md alone, in Python 3 with the standard
library only (SHA-256 and SHA-512 from hashlib; BLAKE3 and Ed25519 verification are below).

    careledger_verify.py export FILE --key LOGKEY [--witness KEY]... [--patient ID]
    careledger_verify.py ledger URL --token TOKEN --key LOGKEY [--checkpoint FILE]
    careledger_verify.py selftest

On any failure it prints one line `FAILED: <what>` and exits 1; on success it exits 0.
"""

import argparse
import base64
import datetime
import hashlib
import json
import sys
import urllib.error
import urllib.parse
import urllib.request


class Failed(Exception):
    """The first check that failed, in one line."""


def fail(what):
    raise Failed(what)


# ---------------------------------------------------------------------------------------------
# BLAKE3, hash mode, 32-byte output (the BLAKE3 specification, section 5 and its pseudo code).

B3_IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
         0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
B3_PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
BLOCK_LEN, CHUNK_LEN = 64, 1024
M32 = 0xFFFFFFFF


def _g(s, a, b, c, d, x, y):
    s[a] = (s[a] + s[b] + x) & M32
    s[d] = ((s[d] ^ s[a]) >> 16 | (s[d] ^ s[a]) << 16) & M32
    s[c] = (s[c] + s[d]) & M32
    s[b] = ((s[b] ^ s[c]) >> 12 | (s[b] ^ s[c]) << 20) & M32
    s[a] = (s[a] + s[b] + y) & M32
    s[d] = ((s[d] ^ s[a]) >> 8 | (s[d] ^ s[a]) << 24) & M32
    s[c] = (s[c] + s[d]) & M32
    s[b] = ((s[b] ^ s[c]) >> 7 | (s[b] ^ s[c]) << 25) & M32


def blake3_compress(cv, block, counter, block_len, flags):
    """The compression function: 16 output words."""
    s = list(cv) + B3_IV[:4] + [counter & M32, counter >> 32, block_len, flags]
    m = list(block)
    for r in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1])
        _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5])
        _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9])
        _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13])
        _g(s, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[i] for i in B3_PERMUTATION]
    for i in range(8):
        s[i] ^= s[i + 8]
        s[i + 8] ^= cv[i]
    return s


def _words(block):
    block = block.ljust(BLOCK_LEN, b"\0")
    return [int.from_bytes(block[i:i + 4], "little") for i in range(0, BLOCK_LEN, 4)]


def _chunk_output(chunk, counter):
    """A chunk's last compression, not yet run: (cv, block words, counter, length, flags)."""
    blocks = [chunk[i:i + BLOCK_LEN] for i in range(0, len(chunk), BLOCK_LEN)] or [b""]
    cv = B3_IV
    for i, block in enumerate(blocks[:-1]):
        cv = blake3_compress(cv, _words(block), counter, BLOCK_LEN, CHUNK_START if i == 0 else 0)[:8]
    start = CHUNK_START if len(blocks) == 1 else 0
    return (cv, _words(blocks[-1]), counter, len(blocks[-1]), start | CHUNK_END)


def _parent_output(left, right):
    return (B3_IV, list(left) + list(right), 0, BLOCK_LEN, PARENT)


def _chaining_value(output):
    return blake3_compress(*output)[:8]


def blake3(data):
    """BLAKE3(data), the default 32-byte output, no key."""
    chunks = [data[i:i + CHUNK_LEN] for i in range(0, len(data), CHUNK_LEN)] or [b""]
    stack = []
    for counter, chunk in enumerate(chunks[:-1]):
        cv = _chaining_value(_chunk_output(chunk, counter))
        total = counter + 1
        while total & 1 == 0:  # merge completed subtrees, as the spec's add_chunk_chaining_value
            cv = _chaining_value(_parent_output(stack.pop(), cv))
            total >>= 1
        stack.append(cv)
    output = _chunk_output(chunks[-1], len(chunks) - 1)
    while stack:
        output = _parent_output(stack.pop(), _chaining_value(output))
    cv, block, _, block_len, flags = output
    words = blake3_compress(cv, block, 0, block_len, flags | ROOT)[:8]
    return b"".join(w.to_bytes(4, "little") for w in words)


# ---------------------------------------------------------------------------------------------
# Ed25519 verification (RFC 8032, section 5.1.7), extended coordinates (section 5.1.4).

ED_P = 2**255 - 19
ED_L = 2**252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)


def _ed_add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % ED_P
    b = (y1 + x1) * (y2 + x2) % ED_P
    c = 2 * t1 * t2 * ED_D % ED_P
    d = 2 * z1 * z2 % ED_P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % ED_P, g * h % ED_P, f * g % ED_P, e * h % ED_P)


def _ed_mul(k, p):
    q = (0, 1, 1, 0)
    while k:
        if k & 1:
            q = _ed_add(q, p)
        p = _ed_add(p, p)
        k >>= 1
    return q


def _ed_equal(p, q):
    return (p[0] * q[2] - q[0] * p[2]) % ED_P == 0 and (p[1] * q[2] - q[1] * p[2]) % ED_P == 0


def ed_decode_point(s):
    """RFC 8032 5.1.3: the point encoded in 32 bytes, or None."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= ED_P:
        return None
    u, v = (y * y - 1) % ED_P, (ED_D * y * y + 1) % ED_P
    x = u * pow(v, 3, ED_P) * pow(u * pow(v, 7, ED_P), (ED_P - 5) // 8, ED_P) % ED_P
    if (v * x * x - u) % ED_P != 0:
        if (v * x * x + u) % ED_P != 0:
            return None
        x = x * ED_SQRT_M1 % ED_P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = ED_P - x
    return (x, y, 1, x * y % ED_P)


ED_B = ed_decode_point((4 * pow(5, ED_P - 2, ED_P) % ED_P).to_bytes(32, "little"))


def ed25519_verify(public, message, signature):
    """True when `signature` (64 bytes) is public's signature of message: [S]B = R + [k]A."""
    if len(signature) != 64:
        return False
    a, r = ed_decode_point(public), ed_decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= ED_L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % ED_L
    return _ed_equal(_ed_mul(s, ED_B), _ed_add(r, _ed_mul(k, a)))


# ---------------------------------------------------------------------------------------------
# Standard base64 and small helpers.

def b64(text, what, length=None):
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        fail(f"malformed export: {what} is not standard base64")
    if length is not None and len(raw) != length:
        fail(f"malformed export: {what} is not {length} bytes")
    return raw


def decimal(text):
    """A decimal without leading zeros ("0" alone is zero), or None."""
    if text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0")):
        return int(text)
    return None


def iso_time(micros):
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=micros)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{micros % 1000000:06d}" if micros % 1000000 else "") + "Z"


# ---------------------------------------------------------------------------------------------
# The frame and the hash ("The frame", "The hash", "Verifying a ledger").

EVENT_TAG = b"careledger/event/v1\0"


def parse_frame(frame):
    """(record format, previous hash, hash, record bytes), or None when malformed."""
    if len(frame) < 67 or frame[0] != 0x01:
        return None
    return int.from_bytes(frame[1:3], "big"), frame[3:35], frame[35:67], frame[67:]


def event_hash(position, fmt, prev, record):
    return blake3(EVENT_TAG + position.to_bytes(8, "big") + fmt.to_bytes(2, "big") + prev + record)


# ---------------------------------------------------------------------------------------------
# The record bytes: bincode 2 standard config, the event catalogue (record formats 1 and 2).

ROLES = [("Gp", "gp"), ("PracticeNurse", "practice_nurse"), ("PracticeAssistant", "practice_assistant"),
         ("Cardiologist", "cardiologist"), ("VascularInternist", "vascular_internist"),
         ("ElderlyCarePhysician", "elderly_care_physician"), ("Pharmacist", "pharmacist"),
         ("Patient", "patient"), ("CareGroupAdmin", "care_group_admin")]
MEASURES = ["ldl", "total_cholesterol", "systolic_bp", "diastolic_bp", "hba1c", "egfr", "weight",
            "glucose", "potassium", "creatinine", "ck", "alt", "nt_probnp", "hdl", "triglycerides",
            "non_hdl", "uacr", "sodium", "heart_rate", "bmi", "lvef"]
MEASURE_DECIMALS = [1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 2, 1, 1, 1, 0, 0, 1, 0]

# enum: [(variant, payload type or None)], in index order.
ENUMS = {
    "Role": [(code, None) for _, code in ROLES],
    "Line": [("first", None), ("second", None), ("patient", None), ("care_group", None)],
    "Lead": [("Cvrm", None), ("OrganDisease", None), ("None", None)],
    "Practitioner": [("Main", None), ("Co", None), ("NotApplicable", None)],
    "Comparator": [("AtMost", None), ("Below", None), ("AtLeast", None), ("Above", None)],
    "TargetBasis": [("NhgGuideline", None), ("EscGuideline", None), ("Individual", None)],
    "DoseUnit": [("mg", None), ("ug", None), ("mL", None), ("[iU]", None), ("tablet", None)],
    "ChangeReason": [("SideEffects", None), ("TargetNotReached", None), ("PatientPreference", None),
                     ("Other", "Text")],
    "Indication": [("Problem", "ElementId"), ("Words", "Text")],
    "MeasurementSource": [("Practice", None), ("Hospital", None), ("SelfMeasuredAtHome", None)],
    "GoalOutcome": [("Achieved", None), ("Abandoned", None), ("Replaced", None)],
    "NoteKind": [("Note", None), ("ReturnLetter", None), ("InterimLetter", None)],
    "IntoleranceKind": [("intolerance", None), ("contra_indication", None)],
    "ProblemCodeSystem": [("icpc_1_nl", None), ("icd_10", None)],
    "SmokingStatus": [("never", None), ("former", None), ("current", None)],
    "Measure": [(code, None) for code in MEASURES],
}

# struct: [(field, type)], in the order written.
STRUCTS = {
    "Member": [("actor", "ActorId"), ("name", "Text"), ("agb", "option<AgbCode>"), ("role", "Role"),
               ("lead", "Lead"), ("practitioner", "Practitioner")],
    "MemberRemoval": [("actor", "ActorId")],
    "SharedCare": [("arrangement", "Text")],
    "Target": [("comparator", "Comparator"), ("value", "Quantity"), ("basis", "TargetBasis"),
               ("rationale", "Text")],
    "TargetWithdrawal": [("measure", "Measure")],
    "Medication": [("atc", "AtcCode"), ("name", "Text"), ("dose", "Dose"), ("frequency", "Text"),
                   ("indication", "option<Indication>")],
    "DoseChange": [("atc", "AtcCode"), ("dose", "Dose"), ("frequency", "Text"),
                   ("reason", "ChangeReason")],
    "MedicationStop": [("atc", "AtcCode"), ("reason", "ChangeReason")],
    "MedicationPreference": [("atc", "AtcCode"), ("name", "Text"), ("preference", "Text")],
    "LabOrder": [("order", "ElementId"), ("tests", "vec<Measure>"), ("annual_panel", "bool")],
    "PanelExtension": [("tests", "vec<Measure>")],
    "LabResult": [("order", "option<ElementId>"), ("value", "Quantity")],
    "Measurement": [("value", "Quantity"), ("source", "MeasurementSource")],
    "LifestyleGoal": [("goal", "ElementId"), ("description", "Text")],
    "GoalClosure": [("goal", "ElementId"), ("outcome", "GoalOutcome")],
    "Note": [("kind", "NoteKind"), ("subject", "Text"), ("body", "Text")],
    "Acknowledgement": [("notification", "u64"), ("recipient", "Line")],
    "Correction": [("position", "u64")],
    "LeadHandover": [("lead", "Lead"), ("to", "ActorId")],
    "Intolerance": [("atc", "AtcCode"), ("substance", "Text"), ("kind", "IntoleranceKind"),
                    ("reaction", "Text")],
    "Problem": [("problem", "ElementId"), ("code", "ProblemCode"), ("description", "Text")],
    "ProblemResolution": [("problem", "ElementId")],
    "SmokingObservation": [("status", "SmokingStatus")],
    "Dose": [("amount_milli", "u64"), ("unit", "DoseUnit")],
    "Quantity": [("measure", "Measure"), ("scaled", "i64")],
    "ProblemCode": [("system", "ProblemCodeSystem"), ("code", "str")],
    "Actor": [("id", "ActorId"), ("role", "Role"), ("name", "Text"),
              ("organisation", "option<AgbCode>")],
}

# The event catalogue: (kind, payload struct), by variant index.
EVENTS = [
    ("care_team_member_added", "Member"), ("care_team_member_removed", "MemberRemoval"),
    ("shared_care_started", "SharedCare"), ("shared_care_ended", "SharedCare"),
    ("target_set", "Target"), ("target_withdrawn", "TargetWithdrawal"),
    ("medication_started", "Medication"), ("medication_dose_changed", "DoseChange"),
    ("medication_stopped", "MedicationStop"),
    ("medication_preference_recorded", "MedicationPreference"),
    ("lab_ordered", "LabOrder"), ("annual_panel_extended", "PanelExtension"),
    ("lab_result_recorded", "LabResult"), ("measurement_recorded", "Measurement"),
    ("lifestyle_goal_set", "LifestyleGoal"), ("lifestyle_goal_closed", "GoalClosure"),
    ("note_added", "Note"), ("notification_acknowledged", "Acknowledgement"),
    ("entered_in_error", "Correction"), ("lead_handed_over", "LeadHandover"),
    ("intolerance_recorded", "Intolerance"), ("problem_recorded", "Problem"),
    ("problem_resolved", "ProblemResolution"), ("smoking_status_recorded", "SmokingObservation"),
]

# What record format 1 lacked ("What record format 1 differed in").
STRUCTS_V1 = dict(STRUCTS)
STRUCTS_V1["Actor"] = STRUCTS["Actor"][:3]
STRUCTS_V1["Medication"] = STRUCTS["Medication"][:4]
STRUCTS_V1["Acknowledgement"] = STRUCTS["Acknowledgement"][:1]
EVENTS_V1 = EVENTS[:19]

ROLE_LINE = {"gp": "first", "practice_nurse": "first", "practice_assistant": "first",
             "cardiologist": "second", "vascular_internist": "second",
             "elderly_care_physician": "first", "pharmacist": "first", "patient": "patient",
             "care_group_admin": "care_group"}

TOKEN_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class Undecodable(Exception):
    pass


def _token(s, kind):
    if not 1 <= len(s) <= 64 or not set(s) <= TOKEN_CHARS:
        raise Undecodable(f"{kind} {s!r} is not 1 to 64 of letters, digits, -, _, . and :")
    return s


def check_patient_id(s):
    _token(s, "patient id")
    if len(s) == 9 and s.isdigit():  # a BSN: the 11-proof
        total = sum((9 - i) * int(d) for i, d in enumerate(s[:8])) - int(s[8])
        if total == 0 or total % 11:
            raise Undecodable(f"patient id {s} is nine digits that fail the BSN 11-proof")
    return s


def check_atc(s):
    s = s.strip().upper()
    ok = len(s) in (1, 3, 4, 5, 7) and all(
        (c.isascii() and c.isupper()) if i in (0, 3, 4) else (c.isascii() and c.isdigit())
        for i, c in enumerate(s))
    if not ok:
        raise Undecodable(f"{s!r} is not an ATC code")
    return s


def check_text(s):
    if len(s.encode()) > 8192:
        raise Undecodable("a text is longer than 8,192 bytes")
    # Rust's char::is_control: Unicode category Cc, U+0000..U+001F and U+007F..U+009F.
    if any((ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) and c not in "\n\t" for c in s):
        raise Undecodable("a text holds a control character")
    return s


def check_problem_code(system, code):
    code = code.strip().upper()
    stem, dot, ext = code.partition(".")
    ok = len(stem) == 3 and "A" <= stem[0] <= "Z" and stem[1:].isascii() and stem[1:].isdigit()
    if system == "icpc_1_nl":
        ok = ok and stem[0] in "ABDFHKLNPRSTUWXZ" and (not dot or (len(ext) == 2 and ext.isascii() and ext.isdigit()))
    else:
        ok = ok and (not dot or (1 <= len(ext) <= 4 and ext.isascii() and ext.isalnum()))
    if not ok:
        raise Undecodable(f"{code!r} is not a {system} code")
    return code


class Reader:
    """bincode 2, config::standard(): little-endian, variable-length integers."""

    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, n):
        if self.at + n > len(self.data):
            raise Undecodable("the record ends early")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def varint(self, bits=64):
        first = self.take(1)[0]
        if first < 251:
            return first
        width = {251: 2, 252: 4, 253: 8}.get(first)
        if width is None or width * 8 > bits:
            raise Undecodable(f"varint marker 0x{first:02x} is not valid for a u{bits}")
        return int.from_bytes(self.take(width), "little")

    def tag(self, what):
        b = self.take(1)[0]
        if b > 1:
            raise Undecodable(f"{what} byte 0x{b:02x} is neither 0x00 nor 0x01")
        return b == 1

    def string(self):
        try:
            return self.take(self.varint()).decode("utf-8")
        except UnicodeDecodeError:
            raise Undecodable("a string is not UTF-8") from None


def decode_value(r, typ, structs):
    """One value of `typ` (the notation of "The event catalogue")."""
    if typ.startswith("option<"):
        return decode_value(r, typ[7:-1], structs) if r.tag("option") else None
    if typ.startswith("vec<"):
        return [decode_value(r, typ[4:-1], structs) for _ in range(r.varint())]
    if typ == "u64":
        return r.varint()
    if typ in ("i64", "Timestamp"):
        z = r.varint()
        return (z >> 1) ^ -(z & 1)
    if typ == "bool":
        return r.tag("boolean")
    if typ == "str":
        return r.string()
    if typ in ("Uid", "Hash"):
        return r.take(16 if typ == "Uid" else 32).hex()
    if typ == "PatientId":
        return check_patient_id(r.string())
    if typ in ("ActorId", "ElementId"):
        return _token(r.string(), typ)
    if typ == "AgbCode":
        s = r.string()
        if len(s) != 8 or not (s.isascii() and s.isdigit()):
            raise Undecodable(f"AGB code {s!r} is not 8 digits")
        return s
    if typ == "AtcCode":
        return check_atc(r.string())
    if typ == "Text":
        return check_text(r.string())
    if typ in ENUMS:
        index = r.varint(32)
        if index >= len(ENUMS[typ]):
            raise Undecodable(f"unknown {typ} variant {index}")
        name, payload = ENUMS[typ][index]
        return {name: decode_value(r, payload, structs)} if payload else name
    if typ in structs:
        value = {field: decode_value(r, ftype, structs) for field, ftype in structs[typ]}
        if typ == "ProblemCode":
            value["code"] = check_problem_code(value["system"], value["code"])
        return value
    raise Undecodable(f"unknown type {typ}")


def decode_record(fmt, record):
    """The record's fields (`Record`); format 1 is read with format 1's layout and upcast."""
    if fmt not in (1, 2):
        raise Undecodable(f"unknown record format {fmt}")
    structs, events = (STRUCTS, EVENTS) if fmt == 2 else (STRUCTS_V1, EVENTS_V1)
    r = Reader(record)
    rec = {"patient": decode_value(r, "PatientId", structs), "revision": r.varint(),
           "event_id": decode_value(r, "Uid", structs),
           "recorded_at": decode_value(r, "Timestamp", structs),
           "occurred_at": decode_value(r, "Timestamp", structs),
           "actor": decode_value(r, "Actor", structs), "reason": decode_value(r, "Text", structs),
           "correlation_id": decode_value(r, "Uid", structs),
           "causation_id": decode_value(r, "option<Uid>", structs),
           "idempotency_key": decode_value(r, "option<str>", structs),
           "signed_request": decode_value(r, "option<Hash>", structs) if fmt == 2 else None}
    index = r.varint(32)
    if index >= len(events):
        raise Undecodable(f"unknown event variant {index}")
    rec["kind"], payload = events[index]
    rec["data"] = decode_value(r, payload, structs)
    if r.at != len(record):
        raise Undecodable(f"{len(record) - r.at} bytes are left over after the event")
    rec["actor"].setdefault("organisation", None)
    if fmt == 1 and rec["kind"] == "medication_started":
        rec["data"]["indication"] = None
    if fmt == 1 and rec["kind"] == "notification_acknowledged":
        rec["data"]["recipient"] = ROLE_LINE[rec["actor"]["role"]]
    return rec


def describe(position, rec):
    actor = rec["actor"]
    return (f"  #{position:<5} rev {rec['revision']:<4} {rec['kind']:<31} "
            f"by {actor['name']} ({actor['id']}, {actor['role']}) recorded {iso_time(rec['recorded_at'])}")


# ---------------------------------------------------------------------------------------------
# The Merkle tree and its proofs (RFC 6962 / RFC 9162 section 2.1, SHA-256).

def leaf_hash(data):
    return hashlib.sha256(b"\0" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\1" + left + right).digest()


def mth(leaves):
    """MTH over leaf hashes (already hashed with the 0x00 prefix)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below n
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 2.1.3.2; returns None or what failed."""
    if index >= size:
        return f"leaf index {index} is not below the tree size {size}"
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return "the path is too long"
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return "the path is too short"
    return None if r == root else "the path does not lead to the root"


def verify_consistency(first, second, first_root, second_root, path):
    """RFC 9162 2.1.4.2; returns None or what failed."""
    if not 0 < first <= second:
        return f"no consistency proof from size {first} to {second}"
    if first == second:
        return None if not path and first_root == second_root else "equal sizes, different roots or a non-empty proof"
    if first & (first - 1) == 0:
        path = [first_root] + list(path)
    if not path:
        return "the proof is empty"
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return "the proof is too long"
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return "the proof is too short"
    if fr != first_root:
        return "the proof does not lead to the first root"
    return None if sr == second_root else "the proof does not lead to the second root"


# ---------------------------------------------------------------------------------------------
# Signed notes, checkpoints and cosignatures (C2SP signed-note, tlog-checkpoint, tlog-cosignature).

def key_id(name, kind, public):
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


def valid_name(name):
    return bool(name) and not any(c.isspace() or c == "+" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name)


def parse_verifier_key(vkey, kind, what):
    """`<name>+<hex key ID>+<base64(type ‖ public key)>`: (name, key ID, public key)."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3 or not valid_name(parts[0]) or len(parts[1]) != 8:
        fail(f"{what} {vkey!r} is not <name>+<hex key ID>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        kid = bytes.fromhex(hex_id)
    except ValueError:
        fail(f"{what} {vkey!r} is malformed")
    if len(raw) != 33 or raw[0] != kind:
        fail(f"{what} {vkey!r} is not an ed25519 key of type 0x{kind:02x}"
             + (" (not a log key)" if kind == 0x01 else " (not a witness's cosigner key)"))
    if key_id(name, kind, raw[1:]) != kid:
        fail(f"{what} {vkey!r}: the key ID does not match the name and key")
    return name, kid, raw[1:]


def parse_note(note):
    """A signed note: (text, [(name, key ID, signature bytes)])."""
    if len(note.encode()) > 64 * 1024:
        fail("the checkpoint is malformed: longer than 64 KiB")
    if any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in note):
        fail("the checkpoint is malformed: it holds a control character other than newline")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        fail("the checkpoint is malformed: no blank line before the signature lines, or no final newline")
    text, lines = note[:split + 1], note[split + 2:].split("\n")[:-1]
    signatures = []
    for line in lines:
        words = line.split(" ")
        if len(words) != 3 or words[0] != "\u2014" or not valid_name(words[1]):
            fail(f"the checkpoint is malformed: signature line {line!r}")
        try:
            raw = base64.b64decode(words[2], validate=True)
        except ValueError:
            fail(f"the checkpoint is malformed: signature line {line!r} is not base64")
        if len(raw) < 5:
            fail(f"the checkpoint is malformed: signature line {line!r} is too short")
        signatures.append((words[1], raw[:4], raw[4:]))
    if not 1 <= len(signatures) <= 64:
        fail("the checkpoint is malformed: it carries no signature line (or more than 64)")
    return text, signatures


def verify_note(note, log_key):
    """Checks the log's signature; returns (text, signatures, origin, size, root, heads line)."""
    name, kid, public = log_key
    text, signatures = parse_note(note)
    by_key = [s for s in signatures if s[0] == name and s[1] == kid]
    if not by_key:
        fail(f"the checkpoint's log signature: the checkpoint carries no signature by the log key {name}+{kid.hex()} "
             "(an export of another log, or the wrong --key)")
    for _, _, signature in by_key:
        if not ed25519_verify(public, text.encode(), signature):
            fail(f"the checkpoint's log signature: the signature by {name} does not verify: "
                 "the checkpoint was changed, or signed by another key of that name")
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or any(not line for line in lines):
        fail("the checkpoint is malformed: it is not origin, size, root and non-empty extension lines")
    origin, size, root = lines[0], decimal(lines[1]), lines[2]
    if size is None:
        fail("the checkpoint is malformed: the tree size is not a decimal without leading zeros")
    try:
        root = base64.b64decode(root, validate=True)
    except ValueError:
        root = b""
    if len(root) != 32:
        fail("the checkpoint is malformed: the root is not 32 bytes in standard base64")
    if origin != name:
        fail(f"the checkpoint's log signature: the checkpoint's origin {origin!r} is not the log key's name {name!r}")
    heads = None
    for line in lines[3:]:
        words = line.split(" ")
        if words[0] != "careledger/heads/v1":
            continue
        if heads is not None:
            fail("the checkpoint is malformed: it carries two careledger/heads/v1 lines")
        count = decimal(words[1]) if len(words) == 3 else None
        try:
            heads_root = base64.b64decode(words[2], validate=True) if count is not None else b""
        except ValueError:
            heads_root = b""
        if len(heads_root) != 32:
            fail(f"the checkpoint is malformed: the extension line {line!r} is not 'careledger/heads/v1 <count> <base64 root>'")
        heads = (count, heads_root)
    return text, signatures, origin, size, root, heads


def verify_cosignature(text, signatures, witness):
    """tlog-cosignature v1 over the whole note text; returns the time it was made."""
    name, kid, public = witness
    found = [s for s in signatures if s[0] == name and s[1] == kid]
    if not found:
        fail(f"witness {name}: the checkpoint carries no cosignature by this witness")
    for _, _, sig in found:
        timestamp = int.from_bytes(sig[:8], "big")
        message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
        if len(sig) != 72 or timestamp >= 2**63 or not ed25519_verify(public, message, sig[8:]):
            fail(f"witness {name}: its cosignature does not verify over the checkpoint")
    return int.from_bytes(found[0][2][:8], "big")


# ---------------------------------------------------------------------------------------------
# The heads map ("The heads map").

def head_key(patient):
    return blake3(b"careledger/heads/v1/key\0" + patient.encode())


def head_commitment(revision, position, hash_):
    return blake3(b"careledger/heads/v1/head\0" + revision.to_bytes(8, "big") + position.to_bytes(8, "big") + hash_)


def heads_root(heads):
    """The heads map's (count, root) from {patient: (revision, position, hash)}."""
    leaves = sorted((head_key(p), head_commitment(*h)) for p, h in heads.items())
    return len(leaves), mth([leaf_hash(k + c) for k, c in leaves])


# ---------------------------------------------------------------------------------------------
# Exports ("Exports", "Verifying an export").

def exact_keys(obj, keys, what):
    if not isinstance(obj, dict) or set(obj) != set(keys):
        fail(f"malformed export: {what} must be an object with exactly the fields {', '.join(keys)}")


def number(value, what):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        fail(f"malformed export: {what} is not a non-negative integer")
    return value


def hashes(values, what):
    if not isinstance(values, list):
        fail(f"malformed export: {what} is not a list")
    return [b64(v, what, 32) for v in values]


def verify_export(path, log_vkey, witness_vkeys, expect_patient):
    log_key = parse_verifier_key(log_vkey, 0x01, "the log key")
    witnesses = [parse_verifier_key(w, 0x04, "the witness key") for w in witness_vkeys]
    try:
        with open(path, "rb") as f:
            raw = f.read(64 * 1024 * 1024 + 1)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    if len(raw) > 64 * 1024 * 1024:
        fail("the file is larger than 64 MiB: not an export")
    try:
        bundle = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        fail("the file is not valid JSON")
    # 1. The format and version; the patient id.
    if not isinstance(bundle, dict) or bundle.get("format") != "careledger-export" or bundle.get("version") != 1:
        fail("not a careledger export: the format is not \"careledger-export\" version 1")
    exact_keys(bundle, ["format", "version", "patient", "checkpoint", "events", "heads"], "the export")
    patient = bundle["patient"]
    if not isinstance(patient, str):
        fail("malformed export: the patient is not a string")
    try:
        check_patient_id(patient)
    except Undecodable as e:
        fail(f"patient: {e}")
    if expect_patient is not None and patient != expect_patient:
        fail(f"patient: the export is of patient {patient}, not {expect_patient}")
    # 2. The checkpoint and the log's signature.
    if not isinstance(bundle["checkpoint"], str):
        fail("malformed export: the checkpoint is not a string")
    text, signatures, origin, size, root, heads_line = verify_note(bundle["checkpoint"], log_key)
    # 3. The witnesses' cosignatures.
    cosigned = [(w[0], verify_cosignature(text, signatures, w)) for w in witnesses]
    # 4. The events.
    events = bundle["events"]
    if not isinstance(events, list):
        fail("malformed export: events is not a list")
    if not events:
        fail("the export holds no events")
    for i, e in enumerate(events):
        exact_keys(e, ["position", "frame", "inclusion"], f"event {i}")
        number(e["position"], f"event {i}'s position")
    for before, after in zip(events, events[1:]):
        if after["position"] <= before["position"]:
            fail(f"event at position {after['position']} follows position {before['position']}: "
                 "events are out of order or repeated")
    history, previous = [], None
    for i, e in enumerate(events):
        position = e["position"]
        frame = b64(e["frame"], f"the frame at position {position}")
        parsed = parse_frame(frame)
        if parsed is None:
            fail(f"event at position {position}: the frame is malformed (too short or of an unknown frame version)")
        fmt, prev, stored, record = parsed
        computed = event_hash(position, fmt, prev, record)
        if computed != stored:
            fail(f"event at position {position}: hash mismatch: the frame's bytes hash to {computed.hex()}, "
                 f"it says {stored.hex()}")
        try:
            rec = decode_record(fmt, record)
        except Undecodable as err:
            fail(f"event at position {position}: undecodable record: {err}")
        if rec["patient"] != patient:
            fail(f"event at position {position} is of patient {rec['patient']}, not {patient}")
        if previous is not None and position == previous[0] + 1 and prev != previous[1]:
            fail(f"broken link at position {position}: its previous hash is not the hash of position {position - 1}")
        if rec["revision"] != i + 1:
            fail(f"revision out of sequence at position {position}: expected revision {i + 1}, "
                 f"the record has {rec['revision']}")
        if not 1 <= position <= size:
            fail(f"event at position {position} is not in the checkpoint's tree (size {size}): "
                 f"position {position} lies outside positions 1 to {size}")
        problem = verify_inclusion(leaf_hash(stored), position - 1, size,
                                   hashes(e["inclusion"], f"the inclusion path of position {position}"), root)
        if problem:
            fail(f"event at position {position} is not in the checkpoint's tree (size {size}): "
                 f"the inclusion proof fails: {problem}")
        history.append((position, rec, stored))
        previous = (position, stored)
    # 5. The tail.
    heads = bundle["heads"]
    if heads_line is None and heads is None:
        completeness = "UNPROVEN: the checkpoint carries no heads map; events after the last may be left out"
    elif heads_line is None:
        fail("the export carries a heads proof, and its checkpoint no heads map to prove it against")
    elif heads is None:
        fail("incomplete: the checkpoint commits to every patient's last event, and the export leaves out "
             "the proof of this patient's (\"heads\" is missing)")
    else:
        verify_tail(heads, heads_line, patient, history[-1])
        completeness = f"the checkpoint's heads map ({heads_line[0]} patients)"
    print(f"VERIFIED: the history of patient {patient}, {len(history)} events")
    print(f"checkpoint   {origin}, tree size {size}, root {root.hex()}")
    for name, at in cosigned:
        print(f"cosigned by  {name} at {iso_time(at * 1000000)}")
    print(f"complete     {completeness}")
    for position, rec, stored in history:
        print(describe(position, rec))
        print(f"         data {json.dumps(rec['data'], sort_keys=True, ensure_ascii=False)}")
        print(f"         hash {stored.hex()}")


def verify_tail(heads, line, patient, last):
    count, root = line
    position, rec, stored = last
    exact_keys(heads, ["index", "inclusion", "left", "right"], "heads")
    index = number(heads["index"], "heads.index")
    key = head_key(patient)
    own = leaf_hash(key + head_commitment(rec["revision"], position, stored))

    def incomplete(problem):
        fail(f"incomplete: the export's last event (revision {rec['revision']}, position {position}) is not the "
             f"patient's last in the checkpoint's heads map, so events after it are left out or the heads proof "
             f"was changed ({problem})")

    problem = verify_inclusion(own, index, count, hashes(heads["inclusion"], "heads.inclusion"), root)
    if problem:
        incomplete(f"its leaf does not prove against the heads root: {problem}")
    for side, at, smaller in (("left", index - 1 if index > 0 else None, True),
                              ("right", index + 1 if index + 1 < count else None, False)):
        leaf = heads[side]
        if leaf is None and at is None:
            continue
        if leaf is None:
            incomplete(f"the {side} neighbour in the heads tree: the leaf at index {at} is not given")
        exact_keys(leaf, ["index", "key", "commitment", "inclusion"], f"heads.{side}")
        if at is None:
            incomplete(f"the {side} neighbour in the heads tree: a leaf is given where the tree has none")
        if number(leaf["index"], f"heads.{side}.index") != at:
            incomplete(f"the {side} neighbour in the heads tree: it is given at index {leaf['index']}, not {at}")
        their_key = b64(leaf["key"], f"heads.{side}.key", 32)
        if (their_key < key) != smaller or their_key == key:
            incomplete(f"the {side} neighbour in the heads tree: its key is not {'below' if smaller else 'above'} the patient's")
        leaf_h = leaf_hash(their_key + b64(leaf["commitment"], f"heads.{side}.commitment", 32))
        problem = verify_inclusion(leaf_h, at, count, hashes(leaf["inclusion"], f"heads.{side}.inclusion"), root)
        if problem:
            incomplete(f"the {side} neighbour in the heads tree: {problem}")


# ---------------------------------------------------------------------------------------------
# A ledger over HTTP ("Verifying a ledger", "The Merkle tree", "Checkpoints").

def http_get(base, path, token, as_json=True):
    request = urllib.request.Request(base.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
    except urllib.error.HTTPError as e:
        fail(f"GET {path} answered {e.code}: {e.read().decode('utf-8', 'replace')[:300]}")
    except (urllib.error.URLError, OSError) as e:
        fail(f"GET {path}: {e}")
    try:
        return json.loads(body) if as_json else body.decode("utf-8")
    except (UnicodeDecodeError, json.JSONDecodeError):
        fail(f"GET {path} did not answer {'JSON' if as_json else 'UTF-8 text'}")


def verify_ledger(url, token, log_vkey, old_checkpoint):
    log_key = parse_verifier_key(log_vkey, 0x01, "the log key")
    note = http_get(url, "/checkpoint", token, as_json=False)
    text, _, origin, size, root, heads_line = verify_note(note, log_key)
    leaves, heads, prev, after = [], {}, bytes(32), 0
    while True:
        page = http_get(url, f"/events?after={after}&limit=1000", token)
        for e in page.get("events", []):
            position = after + 1
            if e.get("position") != position:
                fail(f"gap: position {e.get('position')} follows {after} (the token must see every event: an auditor's)")
            if not isinstance(e.get("frame"), str):
                fail(f"the event at position {position} carries no \"frame\" (the stored frame in base64)")
            parsed = parse_frame(b64(e["frame"], f"the frame at position {position}"))
            if parsed is None:
                fail(f"undecodable: the frame at position {position} is malformed")
            fmt, stored_prev, stored, record = parsed
            if event_hash(position, fmt, stored_prev, record) != stored:
                fail(f"hash mismatch at position {position}: the frame's bytes do not hash to its stored hash")
            if stored_prev != prev:
                fail(f"broken link at position {position}: its previous hash is not the hash of position {position - 1}")
            try:
                rec = decode_record(fmt, record)
            except Undecodable as err:
                fail(f"undecodable record at position {position}: {err}")
            if (e.get("hash"), e.get("prev_hash"), e.get("patient"), e.get("revision"), e.get("type")) != \
                    (stored.hex(), stored_prev.hex(), rec["patient"], rec["revision"], rec["kind"]):
                fail(f"the event at position {position}: its JSON fields differ from its frame")
            leaves.append(leaf_hash(stored))
            if position <= size:
                heads[rec["patient"]] = (rec["revision"], position, stored)
            prev, after = stored, position
        if not page.get("events") or after >= page.get("head", 0):
            break
    if len(leaves) < size:
        fail(f"the checkpoint signs a tree of {size} events, and the ledger shows {len(leaves)}")
    if mth(leaves[:size]) != root:
        fail(f"the checkpoint's root at size {size} is not the root of the tree recomputed from the events")
    if heads_line is not None and heads_root(heads) != heads_line:
        fail(f"the checkpoint's heads map is not the one recomputed from the events at size {size}")
    print(f"VERIFIED: the ledger at {url}: {len(leaves)} events, head hash {prev.hex()}")
    print(f"checkpoint   {origin}, tree size {size}, root {root.hex()} (recomputed from the events)")
    if heads_line is not None:
        print(f"heads map    {heads_line[0]} patients, recomputed from the events")
    if old_checkpoint is not None:
        try:
            with open(old_checkpoint, encoding="utf-8") as f:
                old = f.read()
        except OSError as e:
            fail(f"cannot read {old_checkpoint}: {e.strerror}")
        _, _, _, first, first_root, _ = verify_note(old, log_key)
        if first > size:
            fail(f"the saved checkpoint (size {first}) is larger than the log's latest (size {size}): a rollback")
        if first > 0:
            proof = http_get(url, f"/proof/consistency?first={first}&second={size}", token)
            path = [bytes.fromhex(h) for h in proof.get("path", [])]
            problem = verify_consistency(first, size, first_root, root, path)
            if problem:
                fail(f"the consistency proof from size {first} to {size} fails: {problem}")
            if mth(leaves[:first]) != first_root:
                fail(f"the saved checkpoint's root at size {first} is not the tree recomputed from the events")
        print(f"consistent   with the saved checkpoint at size {first} (RFC 9162 consistency proof)")


# ---------------------------------------------------------------------------------------------
# Self-tests: the official BLAKE3 test vectors and the RFC 8032 Ed25519 test vectors.

BLAKE3_VECTORS = {  # input length -> hash; the input repeats the bytes 0, 1, ..., 250
    0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    1023: "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
    1024: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
    1025: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
    2048: "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
    2049: "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030",
    3072: "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2",
    31744: "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
}

ED25519_VECTORS = [  # RFC 8032 section 7.1: (public key, message, signature)
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


# docs/hash-format.md's own examples: the checkpoint of "Checkpoints, Test vectors" with its
# cosignature, and the format 1 worked example (position 1).
DOC_LOG_KEY = "careledger.example/test-log+f52c0dca+AdBKsjJ0K7SrOhNovUYV5ObQIkq3GgFrr4UgozLJd4c3"
DOC_WITNESS_KEY = "witness.example/gp-cooperative+b98d0379+BKCapfR6Z1mAL/lV+NwtKhSlyZ0jvpf4ZBJ/+Tg0VaTw"
DOC_CHECKPOINT = (
    "careledger.example/test-log\n11\nGe87eVD072/zXpqmzTIIzgmwyY8XmleAFde4p9IgV8A=\n\n"
    "\u2014 careledger.example/test-log 9SwNykiCIL/ASWNme22xTO2ZizvqISTJM1f/YbopachN8rxyAd/+E+nxfoFcnQt++krZBknUCgRX1cjBoXP9G7Wk6wo=\n"
    "\u2014 witness.example/gp-cooperative uY0DeQAAAABppAAQcc02nXd3B+gMq/nYOHHzU2yTmRbp8gZw3wauUNKbtDUkFDVt43M80MzRoyPRS813GgyUgRkACp6RHkJj6RZpCQ==\n")
DOC_RECORD_V1 = (
    "093939393939303030370101010101010101010101010101010101fd80cc0664e5970c00fd0048e863e5970c00"
    "0967702d6a616e73656e0009412e204a616e73656e14666f756e6473207468652063617265207465616dc0c0c0"
    "c0c0c0c0c0c0c0c0c0c0c0c0c00001116c65747465722d323032362d30332d3031000967702d6a616e73656e09"
    "412e204a616e73656e00000000")
DOC_HASH_V1 = "06767b54595bd6ad078b7bf362454c185e14f9c06239c66f15e4aae2ed7ab5a6"


def selftest():
    for length, expected in BLAKE3_VECTORS.items():
        got = blake3(bytes(i % 251 for i in range(length))).hex()
        if got != expected:
            fail(f"BLAKE3 of {length} bytes: {got}, expected {expected}")
        print(f"ok  BLAKE3, {length} bytes")
    for n, (public, message, signature) in enumerate(ED25519_VECTORS, 1):
        public, message, signature = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
        if not ed25519_verify(public, message, signature):
            fail(f"Ed25519: RFC 8032 test {n} does not verify")
        if ed25519_verify(public, message + b"x", signature):
            fail(f"Ed25519: RFC 8032 test {n} verifies over a changed message")
        changed = signature[:40] + bytes([signature[40] ^ 1]) + signature[41:]
        if ed25519_verify(public, message, changed):
            fail(f"Ed25519: RFC 8032 test {n} verifies with a changed signature")
        print(f"ok  Ed25519, RFC 8032 test {n} (and refused when changed)")
    text, signatures, _, size, _, _ = verify_note(DOC_CHECKPOINT, parse_verifier_key(DOC_LOG_KEY, 0x01, "key"))
    at = verify_cosignature(text, signatures, parse_verifier_key(DOC_WITNESS_KEY, 0x04, "key"))
    if (size, at) != (11, 1772355600):
        fail("the checkpoint example of docs/hash-format.md")
    print("ok  the signed and cosigned checkpoint of docs/hash-format.md")
    record = bytes.fromhex(DOC_RECORD_V1)
    rec = decode_record(1, record)
    if event_hash(1, 1, bytes(32), record).hex() != DOC_HASH_V1 or rec["kind"] != "care_team_member_added":
        fail("the format 1 worked example of docs/hash-format.md")
    print("ok  the format 1 worked example of docs/hash-format.md")
    print("selftest passed")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Verify a careledger export or ledger (docs/hash-format.md).")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="check an export bundle offline")
    export.add_argument("file")
    export.add_argument("--key", required=True, help="the log's verifier key")
    export.add_argument("--witness", action="append", default=[], help="a witness's verifier key (repeatable)")
    export.add_argument("--patient", help="the patient the export must be of")
    ledger = sub.add_parser("ledger", help="check a ledger over HTTP")
    ledger.add_argument("url")
    ledger.add_argument("--token", required=True, help="a bearer token that sees every event (an auditor's)")
    ledger.add_argument("--key", required=True, help="the log's verifier key")
    ledger.add_argument("--checkpoint", help="a checkpoint saved earlier, to prove the log extends it")
    sub.add_parser("selftest", help="check BLAKE3 and Ed25519 against published test vectors")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(encoding="utf-8")
    try:
        if args.command == "export":
            verify_export(args.file, args.key, args.witness, args.patient)
        elif args.command == "ledger":
            verify_ledger(args.url, args.token, args.key, args.checkpoint)
        else:
            selftest()
    except Failed as e:
        print(f"FAILED: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
