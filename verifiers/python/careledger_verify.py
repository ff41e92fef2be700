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
import re
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


def _small_order(p):
    """True when [8]P is the identity: P is one of the eight points of small order."""
    q = _ed_mul(8, p)
    return q[0] % ED_P == 0 and (q[1] - q[2]) % ED_P == 0


def ed25519_verify_strict(public, message, signature):
    """ed25519_verify, refusing besides a public key or an R of small order (as ed25519-dalek's
    verify_strict does: one signature, one form)."""
    if len(signature) != 64:
        return False
    a, r = ed_decode_point(public), ed_decode_point(signature[:32])
    if a is None or r is None or _small_order(a) or _small_order(r):
        return False
    return ed25519_verify(public, message, signature)


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
         ("Patient", "patient"), ("CareGroupAdmin", "care_group_admin"),
         ("OutOfHoursGp", "out_of_hours_gp"), ("EmergencyPhysician", "emergency_physician")]
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
    "SigningKey": [("actor", "ActorId"), ("key_id", "ElementId"), ("public_key", "[u8; 32]"),
                   ("system", "Text")],
    "SigningKeyRevocation": [("actor", "ActorId"), ("key_id", "ElementId")],
    "EmergencyAccess": [("hours", "u8")],
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
    ("signing_key_registered", "SigningKey"), ("signing_key_revoked", "SigningKeyRevocation"),
    ("glass_broken", "EmergencyAccess"),
]

# The reserved stream of the key events ("The key stream"), and the key event kinds.
KEY_STREAM = "careledger:keys"
KEY_KINDS = ("signing_key_registered", "signing_key_revoked")

# What record format 1 lacked ("What record format 1 differed in").
STRUCTS_V1 = dict(STRUCTS)
STRUCTS_V1["Actor"] = STRUCTS["Actor"][:3]
STRUCTS_V1["Medication"] = STRUCTS["Medication"][:4]
STRUCTS_V1["Acknowledgement"] = STRUCTS["Acknowledgement"][:1]
EVENTS_V1 = EVENTS[:19]

ROLE_LINE = {"gp": "first", "practice_nurse": "first", "practice_assistant": "first",
             "cardiologist": "second", "vascular_internist": "second",
             "elderly_care_physician": "first", "pharmacist": "first", "patient": "patient",
             "care_group_admin": "care_group", "out_of_hours_gp": "first",
             "emergency_physician": "second"}

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
    if typ == "u8":
        return r.take(1)[0]
    if typ in ("i64", "Timestamp"):
        z = r.varint()
        return (z >> 1) ^ -(z & 1)
    if typ == "bool":
        return r.tag("boolean")
    if typ == "str":
        return r.string()
    if typ in ("Uid", "Hash", "[u8; 32]"):
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
    # Versions 1 and 2 have the same fields; 2 adds signed_requests and keys, which version 1
    # leaves out (or carries empty).
    fields = ["format", "version", "patient", "checkpoint", "events", "heads"]
    if not isinstance(bundle, dict) or not set(fields) <= set(bundle) \
            or not set(bundle) <= set(fields + ["signed_requests", "keys"]):
        if isinstance(bundle, dict) and bundle.get("format") == "careledger-export":
            fail(f"malformed export: the export must be an object with exactly the fields {', '.join(fields)} "
                 "(and, in version 2, signed_requests and keys)")
        fail("not a careledger export: the format is not \"careledger-export\"")
    requests, keys = bundle.get("signed_requests", []), bundle.get("keys", [])
    if not isinstance(requests, list) or not isinstance(keys, list):
        fail("malformed export: signed_requests and keys are lists")
    for i, r in enumerate(requests):
        exact_keys(r, ["bytes"], f"signed request {i}")
    for i, e in enumerate(keys):
        exact_keys(e, ["position", "frame", "inclusion"], f"key event {i}")
        number(e["position"], f"key event {i}'s position")
    requests = [b64(r["bytes"], f"signed request {i}") for i, r in enumerate(requests)]
    carries = bool(requests or keys)
    if bundle["format"] != "careledger-export" or bundle["version"] not in (1, 2) or \
            (bundle["version"] == 1 and carries):
        fail(f"not a careledger export: format {json.dumps(bundle['format'])} version {bundle['version']}"
             f"{' with signed requests or key events' if carries else ''}, this build reads "
             "\"careledger-export\" versions 1 and 2")
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
    # 6. The key events; 7. the signatures, then what the HTTP layer knows of each request.
    registry, key_events = verify_keys(keys, size, root)
    signatures = verify_signatures(requests, history, registry)
    check_signed_requests(patient, history, signatures)
    print(f"VERIFIED: the history of patient {patient}, {len(history)} events")
    print(f"checkpoint   {origin}, tree size {size}, root {root.hex()}")
    for name, at in cosigned:
        print(f"cosigned by  {name} at {iso_time(at * 1000000)}")
    print(f"complete     {completeness}")
    signed = sum(1 for sig in signatures if sig[0] == "signed")
    print(f"signatures   {signed} of {len(history)} events signed by their actor's client system, each "
          "verified under a key whose registration is in the checkpoint's tree")
    for (position, rec, stored), signature in zip(history, signatures):
        print(describe(position, rec))
        print(f"         data {json.dumps(rec['data'], sort_keys=True, ensure_ascii=False)}")
        print(f"         {signature_line(rec, signature)}")
        print(f"         hash {stored.hex()}")
    if key_events:
        print(f"key events   {len(key_events)} of the {KEY_STREAM} stream, about the actors of these events")
    for position, rec, stored in key_events:
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
# Signed requests ("Signed requests", "The key stream", "Verifying an export" steps 6 and 7).

MAX_CREATED_SKEW_SECONDS = 300
REQUIRED_COMPONENTS = ["@method", "@path", "content-digest"]
SUPPORTED_COMPONENTS = ["@method", "@path", "@authority", "@target-uri", "content-digest", "date",
                        "content-type", "content-length"]
SUPPORTED_PARAMS = ["created", "keyid", "alg", "expires", "nonce"]


def decode_signed_request(data):
    """The stored bytes of a signed request (bincode 2, `SignedRequest`'s fields in order)."""
    r = Reader(data)
    key_id = _token(r.string(), "ElementId")
    z = r.varint()
    request = {"key_id": key_id, "created": (z >> 1) ^ -(z & 1), "signature_input": r.string(),
               "signature": r.take(r.varint()), "signature_base": r.string(), "body": r.take(r.varint())}
    if r.at != len(data):
        raise Undecodable(f"{len(data) - r.at} trailing bytes")
    return request


class SfReader:
    """The structured fields (RFC 8941) of Signature-Input and Content-Digest: dictionaries of
    inner lists or byte sequences, with string and integer parameters. None: malformed."""

    def __init__(self, text):
        self.t, self.at = text.encode("utf-8"), 0

    def peek(self):
        return self.t[self.at] if self.at < len(self.t) else None

    def skip_spaces(self):
        while self.peek() in (0x20, 0x09):
            self.at += 1

    def eat(self, c):
        if self.peek() == ord(c):
            self.at += 1
            return True
        return False

    def key(self):
        start, c = self.at, self.peek()
        if c is None or not (0x61 <= c <= 0x7A or c == 0x2A):
            return None
        self.at += 1
        while self.peek() is not None and (0x61 <= self.peek() <= 0x7A or 0x30 <= self.peek() <= 0x39
                                           or self.peek() in b"_-.*"):
            self.at += 1
        return self.t[start:self.at].decode()

    def string(self):
        if not self.eat('"'):
            return None
        out = []
        while True:
            c = self.peek()
            if c is None:
                return None
            if c == 0x5C:
                self.at += 1
                c = self.peek()
                if c not in (0x22, 0x5C):
                    return None
                out.append(chr(c))
                self.at += 1
            elif c == 0x22:
                self.at += 1
                return "".join(out)
            elif 0x20 <= c < 0x7F:
                out.append(chr(c))
                self.at += 1
            else:
                return None

    def integer(self):
        start = self.at
        self.eat("-")
        while self.peek() is not None and 0x30 <= self.peek() <= 0x39:
            self.at += 1
        digits = self.t[start:self.at].decode()
        if not digits.lstrip("-") or len(digits) > 16:
            return None
        return int(digits)

    def params(self):
        params = []
        while self.eat(";"):
            self.skip_spaces()
            name = self.key()
            if name is None or not self.eat("="):
                return None
            value = self.string() if self.peek() == 0x22 else self.integer()
            if value is None:
                return None
            params.append((name, value))
        return params

    def inner_list(self):
        if not self.eat("("):
            return None
        components = []
        while True:
            self.skip_spaces()
            if self.eat(")"):
                break
            component = self.string()
            if component is None or self.peek() == 0x3B or self.peek() not in (0x20, 0x29):
                return None  # component parameters are not supported
            components.append(component)
        params = self.params()
        return None if params is None else (components, params)

    def bytes_(self):
        if not self.eat(":"):
            return None
        end = self.t.find(b":", self.at)
        if end < 0:
            return None
        text, self.at = self.t[self.at:end], end + 1
        try:
            return base64.b64decode(text, validate=True)
        except ValueError:
            return None

    def dictionary(self, member):
        out = []
        self.skip_spaces()
        while self.at < len(self.t):
            key = self.key()
            if key is None or not self.eat("="):
                return None
            value = member()
            if value is None:
                return None
            out.append((key, value))
            self.skip_spaces()
            if self.at == len(self.t):
                break
            if not self.eat(","):
                return None
            self.skip_spaces()
        return out


def sf_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_params(components, params):
    """The `@signature-params` value: the inner list as a structured field (RFC 8941 4.1.1.1)."""
    out = "(" + " ".join(sf_string(c) for c in components) + ")"
    for name, value in params:
        out += f";{name}=" + (str(value) if isinstance(value, int) else sf_string(value))
    return out


def signature_base(values, components, params):
    """RFC 9421 2.5: a line `"<component>": <value>` per covered component, then the
    `"@signature-params"` line; lines end with LF, the last has none."""
    return "".join(f"{sf_string(c)}: {v}\n" for c, v in values) + \
        '"@signature-params": ' + serialize_params(components, params)


class SignatureProblem(Exception):
    pass


def check_params(components, params):
    """The key id and `created` of acceptable signature parameters."""
    for required in REQUIRED_COMPONENTS:
        if required not in components:
            raise SignatureProblem(f'the signature must cover "{required}"')
    for i, c in enumerate(components):
        if c not in SUPPORTED_COMPONENTS:
            raise SignatureProblem(f'component "{c}" is not supported')
        if c in components[:i]:
            raise SignatureProblem(f'component "{c}" is covered twice')
    for name, _ in params:
        if name not in SUPPORTED_PARAMS:
            raise SignatureProblem(f"signature parameter {name} is not supported")

    def first(name, kind):
        return next((v for n, v in params if n == name and isinstance(v, kind)), None)
    if first("alg", str) != "ed25519":
        raise SignatureProblem('the signature must name alg="ed25519", the only algorithm accepted')
    created, key_id = first("created", int), first("keyid", str)
    if created is None:
        raise SignatureProblem("the signature must carry created=<seconds since 1970>, the time it was made")
    if key_id is None:
        raise SignatureProblem('the signature must carry keyid="<the key id registered for you>"')
    try:
        _token(key_id, "key id")
    except Undecodable as e:
        raise SignatureProblem(f"keyid is not a key id: {e}") from None
    return key_id, created


def digest_matches(value, body):
    """True when a Content-Digest value (RFC 9530) has a sha-256 member equal to the body's."""
    reader = SfReader(value)
    members = reader.dictionary(reader.bytes_)
    if members is None:
        raise SignatureProblem("Content-Digest is not a dictionary of byte sequences (RFC 9530)")
    digest = next((d for k, d in members if k == "sha-256"), None)
    if digest is None:
        raise SignatureProblem("Content-Digest holds no sha-256 digest")
    return digest == hashlib.sha256(body).digest()


def check_stored(request):
    """A stored signed request's own consistency: its Signature-Input entry's parameters are
    acceptable and name its key id and `created`; its base is the base of those parameters; the
    base's content-digest is the body's. Returns its (method, path)."""
    reader = SfReader(request["signature_input"])
    inputs = reader.dictionary(reader.inner_list)
    if inputs is None:
        raise SignatureProblem("its Signature-Input is not signature parameters")
    if len(inputs) != 1:
        raise SignatureProblem("its Signature-Input holds more than one signature")
    components, params = inputs[0][1]
    key_id, created = check_params(components, params)
    if key_id != request["key_id"] or created != request["created"]:
        raise SignatureProblem("its key id or created differs from its Signature-Input")
    lines, values = request["signature_base"].split("\n"), []
    for i, component in enumerate(components):
        if i >= len(lines):
            raise SignatureProblem("its signature base is cut short")
        prefix = f"{sf_string(component)}: "
        if not lines[i].startswith(prefix):
            raise SignatureProblem(f'its signature base has no line for "{component}"')
        values.append((component, lines[i][len(prefix):]))
    if signature_base(values, components, params) != request["signature_base"]:
        raise SignatureProblem("its signature base is not the base of its Signature-Input")
    value = dict(values)
    if not digest_matches(value.get("content-digest", ""), request["body"]):
        raise SignatureProblem("the body does not match the content digest it was signed with")
    return value.get("@method", ""), value.get("@path", "")


# The append body of POST /patients/{patient}/events, read into the events its commands make,
# as the server reads it (its command types, fields, names and defaults).

class WireProblem(Exception):
    pass


MEASURE_UNITS = ["mmol/L", "mmol/L", "mm[Hg]", "mm[Hg]", "mmol/mol", "mL/min/{1.73_m2}", "kg",
                 "mmol/L", "mmol/L", "umol/L", "U/L", "U/L", "ng/L", "mmol/L", "mmol/L", "mmol/L",
                 "mg/mmol", "mmol/L", "/min", "kg/m2", "%"]
WIRE_NAMES = {  # wire name -> the catalogue's value, per enum
    "Role": {code: code for _, code in ROLES},
    "Lead": {"cvrm": "Cvrm", "organ_disease": "OrganDisease", "none": "None"},
    "Practitioner": {"main": "Main", "co": "Co", "not_applicable": "NotApplicable"},
    "Comparator": {"<=": "AtMost", "\u2264": "AtMost", "at_most": "AtMost", "<": "Below", "below": "Below",
                   ">=": "AtLeast", "\u2265": "AtLeast", "at_least": "AtLeast", ">": "Above", "above": "Above"},
    "TargetBasis": {"nhg_guideline": "NhgGuideline", "esc_guideline": "EscGuideline", "individual": "Individual"},
    "DoseUnit": {u: u for u, _ in ENUMS["DoseUnit"]},
    "MeasurementSource": {"practice": "Practice", "hospital": "Hospital",
                          "self_measured_at_home": "SelfMeasuredAtHome"},
    "GoalOutcome": {"achieved": "Achieved", "abandoned": "Abandoned", "replaced": "Replaced"},
    "NoteKind": {"note": "Note", "return_letter": "ReturnLetter", "interim_letter": "InterimLetter"},
    "Line": {line: line for line, _ in ENUMS["Line"]},
    "IntoleranceKind": {"intolerance": "intolerance", "contra_indication": "contra_indication"},
    "ProblemCodeSystem": {"icpc_1_nl": "icpc_1_nl", "http://hl7.org/fhir/sid/icpc-1-nl": "icpc_1_nl",
                          "icd_10": "icd_10", "http://hl7.org/fhir/sid/icd-10": "icd_10"},
    "SmokingStatus": {s: s for s, _ in ENUMS["SmokingStatus"]},
    "Measure": {m: m for m in MEASURES},
    "ChangeReason": {"side_effects": "SideEffects", "target_not_reached": "TargetNotReached",
                     "patient_preference": "PatientPreference", "other": "Other"},
}
DIGITS = set("0123456789")
RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _named(enum, raw):
    value = WIRE_NAMES[enum].get(raw)
    if value is None:
        raise WireProblem(f"{raw!r} is not a {enum}; use one of {', '.join(WIRE_NAMES[enum])}")
    return value


def _quantity(f):
    measure = _named("Measure", f["measure"])
    index = MEASURES.index(measure)
    if f["unit"] != MEASURE_UNITS[index]:
        raise WireProblem(f"{f['unit']!r} is not accepted for {measure}; record it in {MEASURE_UNITS[index]}")
    raw, decimals = f["value"].strip(), MEASURE_DECIMALS[index]
    neg = raw.startswith("-")
    whole, _, frac = (raw[1:] if neg else raw).partition(".")
    if not whole or not set(whole + frac) <= DIGITS or len(whole) > 12 or len(frac) > decimals:
        raise WireProblem(f"{raw!r} for {measure} is not a decimal with at most {decimals} decimal(s)")
    scaled = int(whole + frac.ljust(decimals, "0"))
    return {"measure": measure, "scaled": -scaled if neg else scaled}


def _dose(f):
    unit, raw = _named("DoseUnit", f["dose_unit"]), f["dose"].strip()
    whole, _, frac = raw.partition(".")
    if not whole or len(whole) > 9 or len(frac) > 3 or not set(whole + frac) <= DIGITS:
        raise WireProblem(f"{f['dose']!r} is not a positive decimal with at most 3 decimals")
    return {"amount_milli": int(whole) * 1000 + int(frac.ljust(3, "0")), "unit": unit}


def _change_reason(f):
    code = _named("ChangeReason", f["change_reason"])
    return {"Other": check_text(f.get("change_reason_text") or "")} if code == "Other" else code


def _tests(raw):
    if len(raw) > 2 * len(MEASURES):
        raise WireProblem(f"names {len(raw)} tests; at most {2 * len(MEASURES)} are accepted")
    return [_named("Measure", t) for t in raw]


def _indication(f):
    problem, words = f.get("indication_problem"), f.get("indication_text")
    if problem is not None and words is not None:
        raise WireProblem("indication_problem and indication_text exclude each other")
    if problem is not None:
        return {"Problem": _token(problem, "ElementId")}
    return {"Words": check_text(words)} if words is not None else None


def _acknowledgement(f, acting):
    ref, from_id = f["notification"], None
    if isinstance(ref, str):
        m = re.fullmatch(r"n-([0-9]+)(?:-(.*))?", ref)
        if m is None or (m.group(2) is not None and m.group(2) not in WIRE_NAMES["Line"]):
            raise WireProblem(f"{ref!r} is not a notification id")
        ref, from_id = int(m.group(1)), m.group(2)
    given = _named("Line", f["recipient"]) if f.get("recipient") is not None else None
    if from_id is not None and given is not None and from_id != given:
        raise WireProblem(f"recipient says the {given} but the notification id names the {from_id}")
    return {"notification": ref, "recipient": from_id or given or acting}


def _opt(f, name, default):
    """An optional field's name, or the default when it is absent."""
    return default if f.get(name) is None else f[name]


def _text(s):
    return check_text(s)


def _id(s):
    return _token(s, "id")


def _atc(s):
    return check_atc(s)


# command type -> (event kind, {field: JSON type}, the payload from the fields and acting line).
# JSON types: "s" string, "s?" optional string, "u" whole number, "b?" optional boolean, "[s]"
# list of strings, "n" a position or a notification id.
COMMANDS = {
    "add_care_team_member": ("care_team_member_added", {
        "actor": "s", "name": "s", "agb": "s?", "role": "s", "lead": "s?", "practitioner": "s?"},
        lambda f, a: {"actor": _id(f["actor"]), "name": _text(f["name"]),
                      "agb": decode_agb(f["agb"]) if f.get("agb") is not None else None,
                      "role": _named("Role", f["role"]), "lead": _named("Lead", _opt(f, "lead", "none")),
                      "practitioner": _named("Practitioner", _opt(f, "practitioner", "co"))}),
    "remove_care_team_member": ("care_team_member_removed", {"actor": "s"},
                                lambda f, a: {"actor": _id(f["actor"])}),
    "start_shared_care": ("shared_care_started", {"arrangement": "s"},
                          lambda f, a: {"arrangement": _text(f["arrangement"])}),
    "end_shared_care": ("shared_care_ended", {"arrangement": "s"},
                        lambda f, a: {"arrangement": _text(f["arrangement"])}),
    "set_target": ("target_set", {"measure": "s", "comparator": "s", "value": "s", "unit": "s", "basis": "s",
                                  "rationale": "s?"},
                   lambda f, a: {"comparator": _named("Comparator", f["comparator"]), "value": _quantity(f),
                                 "basis": _named("TargetBasis", f["basis"]),
                                 "rationale": _text(f.get("rationale") or "")}),
    "withdraw_target": ("target_withdrawn", {"measure": "s"},
                        lambda f, a: {"measure": _named("Measure", f["measure"])}),
    "start_medication": ("medication_started", {"atc": "s", "name": "s", "dose": "s", "dose_unit": "s",
                                                "frequency": "s", "indication_problem": "s?",
                                                "indication_text": "s?"},
                         lambda f, a: {"atc": _atc(f["atc"]), "name": _text(f["name"]), "dose": _dose(f),
                                       "frequency": _text(f["frequency"]), "indication": _indication(f)}),
    "change_dose": ("medication_dose_changed", {"atc": "s", "dose": "s", "dose_unit": "s", "frequency": "s",
                                                "change_reason": "s", "change_reason_text": "s?"},
                    lambda f, a: {"atc": _atc(f["atc"]), "dose": _dose(f), "frequency": _text(f["frequency"]),
                                  "reason": _change_reason(f)}),
    "stop_medication": ("medication_stopped", {"atc": "s", "change_reason": "s", "change_reason_text": "s?"},
                        lambda f, a: {"atc": _atc(f["atc"]), "reason": _change_reason(f)}),
    "record_medication_preference": ("medication_preference_recorded", {"atc": "s", "name": "s",
                                                                        "preference": "s"},
                                     lambda f, a: {"atc": _atc(f["atc"]), "name": _text(f["name"]),
                                                   "preference": _text(f["preference"])}),
    "order_lab": ("lab_ordered", {"order": "s", "tests": "[s]", "annual_panel": "b?"},
                  lambda f, a: {"order": _id(f["order"]), "tests": _tests(f["tests"]),
                                "annual_panel": bool(f.get("annual_panel"))}),
    "extend_annual_panel": ("annual_panel_extended", {"tests": "[s]"},
                            lambda f, a: {"tests": _tests(f["tests"])}),
    "record_lab_result": ("lab_result_recorded", {"order": "s?", "measure": "s", "value": "s", "unit": "s"},
                          lambda f, a: {"order": _id(f["order"]) if f.get("order") is not None else None,
                                        "value": _quantity(f)}),
    "record_measurement": ("measurement_recorded", {"measure": "s", "value": "s", "unit": "s", "source": "s"},
                           lambda f, a: {"value": _quantity(f),
                                         "source": _named("MeasurementSource", f["source"])}),
    "set_lifestyle_goal": ("lifestyle_goal_set", {"goal": "s", "description": "s"},
                           lambda f, a: {"goal": _id(f["goal"]), "description": _text(f["description"])}),
    "close_lifestyle_goal": ("lifestyle_goal_closed", {"goal": "s", "outcome": "s"},
                             lambda f, a: {"goal": _id(f["goal"]),
                                           "outcome": _named("GoalOutcome", f["outcome"])}),
    "add_note": ("note_added", {"kind": "s?", "subject": "s", "body": "s?"},
                 lambda f, a: {"kind": _named("NoteKind", _opt(f, "kind", "note")), "subject": _text(f["subject"]),
                               "body": _text(f.get("body") or "")}),
    "acknowledge_notification": ("notification_acknowledged", {"notification": "n", "recipient": "s?"},
                                 _acknowledgement),
    "mark_entered_in_error": ("entered_in_error", {"position": "u"}, lambda f, a: {"position": f["position"]}),
    "hand_over_lead": ("lead_handed_over", {"lead": "s", "to": "s"},
                       lambda f, a: {"lead": _named("Lead", f["lead"]), "to": _id(f["to"])}),
    "record_intolerance": ("intolerance_recorded", {"atc": "s", "substance": "s", "kind": "s?", "reaction": "s"},
                           lambda f, a: {"atc": _atc(f["atc"]), "substance": _text(f["substance"]),
                                         "kind": _named("IntoleranceKind", _opt(f, "kind", "intolerance")),
                                         "reaction": _text(f["reaction"])}),
    "record_problem": ("problem_recorded", {"problem": "s", "code_system": "s", "code": "s", "description": "s"},
                       lambda f, a: {"problem": _id(f["problem"]), "code": {
                           "system": _named("ProblemCodeSystem", f["code_system"]),
                           "code": check_problem_code(_named("ProblemCodeSystem", f["code_system"]), f["code"])},
                           "description": _text(f["description"])}),
    "resolve_problem": ("problem_resolved", {"problem": "s"}, lambda f, a: {"problem": _id(f["problem"])}),
    "record_smoking_status": ("smoking_status_recorded", {"status": "s"},
                              lambda f, a: {"status": _named("SmokingStatus", f["status"])}),
}


def decode_agb(s):
    if len(s) != 8 or not set(s) <= DIGITS:
        raise WireProblem(f"AGB code {s!r} is not 8 digits")
    return s


def parse_rfc3339(raw):
    """An RFC 3339 time in microseconds since 1970 (fractions beyond microseconds cut off)."""
    m = RFC3339.match(raw)
    if m is None:
        raise WireProblem(f"{raw!r} is not an RFC 3339 time such as 2026-03-01T09:30:00Z")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        t = datetime.datetime(y, mo, d, h, mi, s) - datetime.datetime(1970, 1, 1)
    except ValueError:
        raise WireProblem(f"{raw!r} is not an RFC 3339 time") from None
    micros = (t.days * 86400 + t.seconds) * 1000000 + int((m.group(7) or ".")[1:7].ljust(6, "0"))
    zone = m.group(8)
    if zone not in ("Z", "z"):
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60 * 1000000
        micros -= offset if zone[0] == "+" else -offset
    return micros


def _json_is(value, kind):
    if kind == "s":
        return isinstance(value, str)
    if kind == "s?":
        return value is None or isinstance(value, str)
    if kind == "u":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64
    if kind == "b?":
        return value is None or isinstance(value, bool)
    if kind == "[s]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "n":
        return isinstance(value, str) or _json_is(value, "u")
    return False


def parse_append_body(body, acting):
    """The submissions of an append body: [(kind, payload, reason, occurred_at or None)]."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WireProblem("the body is not valid JSON") from None
    if not isinstance(value, dict) or not set(value) <= {"expected_revision", "commands"} \
            or not isinstance(value.get("commands"), list):
        raise WireProblem("the body is not an object with commands (and expected_revision)")
    expected = value.get("expected_revision")
    if expected is not None and not (_json_is(expected, "u") or isinstance(expected, str) and (
            expected.strip().strip('"') in ("any", "*", "no_stream") or expected.strip().strip('"').isdigit())):
        raise WireProblem(f"expected revision {expected!r} is not a revision")
    commands = value["commands"]
    if not 1 <= len(commands) <= 1000:
        raise WireProblem(f"commands: holds 1 to 1000 commands, got {len(commands)}")
    out = []
    for i, c in enumerate(commands):
        at = f"commands[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("type"), str):
            raise WireProblem(f"{at}: a command is an object with a type")
        if c["type"] not in COMMANDS:
            raise WireProblem(f"{at}: {c['type']!r} is not a command type")
        kind, fields, payload = COMMANDS[c["type"]]
        fields = dict(fields, type="s", reason="s?", occurred_at="s?")
        for name, v in c.items():
            if name not in fields:
                raise WireProblem(f"{at}: unknown field {name}")
            if not _json_is(v, fields[name]):
                raise WireProblem(f"{at}.{name}: not of the expected JSON type")
        for name, kind_ in fields.items():
            if "?" not in kind_ and name not in c:
                raise WireProblem(f"{at}: missing field {name}")
        try:
            reason = check_text(c.get("reason") or "")
            occurred = parse_rfc3339(c["occurred_at"]) if c.get("occurred_at") is not None else None
            out.append((kind, payload(c, acting), reason, occurred))
        except (Undecodable, WireProblem) as e:
            raise WireProblem(f"{at}: {e}") from None
    return out


def valid_at(key, position):
    """A key signs for an event at `position` when registered before it and not revoked before it."""
    return key["registered_at"] < position and (key["revoked_at"] is None or key["revoked_at"] > position)


def verify_keys(keys, size, root):
    """Step 6: the key events, folded into {(actor, key id): registered key}."""
    registry, previous, events = {}, 0, []
    for e in keys:
        position = e["position"]

        def problem(what):
            fail(f"key event at position {position}: {what}")
        if position <= previous:
            problem(f"follows position {previous}: key events are out of order or repeated")
        previous = position
        parsed = parse_frame(b64(e["frame"], f"the key frame at position {position}"))
        if parsed is None:
            problem("the frame is malformed")
        fmt, prev, stored, record = parsed
        computed = event_hash(position, fmt, prev, record)
        if computed != stored:
            problem(f"hash mismatch: the frame's bytes hash to {computed.hex()}, it says {stored.hex()} "
                    "(the key event was changed)")
        try:
            rec = decode_record(fmt, record)
        except Undecodable as err:
            problem(f"undecodable record: {err}")
        if rec["patient"] != KEY_STREAM or rec["kind"] not in KEY_KINDS:
            problem("it is not a key event of the key stream")
        if position > size:
            problem(f"it lies outside the checkpoint's positions 1 to {size}")
        failed = verify_inclusion(leaf_hash(stored), position - 1, size,
                                  hashes(e["inclusion"], f"the inclusion path of key event {position}"), root)
        if failed:
            problem(f"not in the checkpoint's tree: {failed}")
        which = (rec["data"]["actor"], rec["data"]["key_id"])
        if rec["kind"] == "signing_key_registered":
            registry[which] = {"key": rec["data"], "registered_at": position,
                               "registered_by": rec["actor"]["id"], "revoked_at": None}
        elif which in registry and registry[which]["revoked_at"] is None:
            registry[which]["revoked_at"] = position
        events.append((position, rec, stored))
    return registry, events


def verify_signatures(requests, history, registry):
    """Step 7 as far as the ledger checks it: per event ("signed", key, request) or
    ("unsigned", whether its actor had a key in use)."""
    by_hash = {blake3(raw).hex(): raw for raw in requests}
    out = []
    for position, rec, _ in history:
        actor, h = rec["actor"]["id"], rec["signed_request"]
        if h is None:
            had = any(k["key"]["actor"] == actor and valid_at(k, position) for k in registry.values())
            out.append(("unsigned", had))
            continue

        def problem(what):
            fail(f"event at position {position}: signed request: {what}")
        if h not in by_hash:
            problem(f"the record names signed request {h}, which the export does not carry "
                    "(left out, or changed so that it no longer hashes to it)")
        try:
            request = decode_signed_request(by_hash[h])
        except Undecodable as e:
            problem(f"it does not decode: {e}")
        key = registry.get((actor, request["key_id"]))
        if key is None:
            problem(f"it names key {request['key_id']} of {actor}, whose registration the export does not carry")
        if not valid_at(key, position):
            revoked = "None" if key["revoked_at"] is None else f"Some({key['revoked_at']})"
            problem(f"key {request['key_id']} of {actor} was not in use at this position "
                    f"(registered at {key['registered_at']}, revoked at {revoked})")
        if not ed25519_verify_strict(bytes.fromhex(key["key"]["public_key"]),
                                     request["signature_base"].encode("utf-8"), request["signature"]):
            problem(f"its signature does not verify under key {request['key_id']} of {actor}")
        if abs(request["created"] - rec["recorded_at"] // 1000000) > MAX_CREATED_SKEW_SECONDS:
            problem(f"it was created at {request['created']} (seconds since 1970), more than "
                    f"{MAX_CREATED_SKEW_SECONDS} s from the event's recording")
        out.append(("signed", key, request))
    return out


def check_signed_requests(patient, history, signatures):
    """Step 7's HTTP checks: each signed request covers POST to this patient's events, its
    content digest is its body's, and its body's commands are the events that name it, in order,
    with their reasons and clinical times."""
    path, checked = f"/patients/{patient}/events", set()
    for (position, rec, _), signature in zip(history, signatures):
        h = rec["signed_request"]
        if signature[0] != "signed" or h in checked:
            continue
        checked.add(h)
        request = signature[2]

        def problem(what):
            fail(f"event at position {position}: signed request: {what}")
        try:
            method, signed_path = check_stored(request)
        except SignatureProblem as e:
            problem(str(e))
        if method != "POST" or signed_path != path:
            problem(f"it was signed for {method} {signed_path}, not POST {path}: a signed request of another "
                    "patient or route")
        try:
            submissions = parse_append_body(request["body"], ROLE_LINE[rec["actor"]["role"]])
        except WireProblem as e:
            problem(f"its body does not read as an append: {e}")
        produced = [r for _, r, _ in history if r["signed_request"] == h]
        matches = len(submissions) == len(produced) and all(
            kind == r["kind"] and data == r["data"] and reason == r["reason"]
            and (r["recorded_at"] if occurred is None else occurred) == r["occurred_at"]
            for (kind, data, reason, occurred), r in zip(submissions, produced))
        if not matches:
            problem(f"its body's {len(submissions)} commands are not the {len(produced)} events that name it")


def signature_line(rec, signature):
    if signature[0] == "signed":
        key = signature[1]
        return (f"signed by {key['key']['key_id']} of {key['key']['actor']} "
                f"(registered at position {key['registered_at']} by {key['registered_by']})")
    if signature[1]:
        return (f"unsigned (although {rec['actor']['id']} had a signing key registered: "
                "not from their client system)")
    return "unsigned"


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
    leaves, heads, prev, after, key_events = [], {}, bytes(32), 0, 0
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
            if rec["patient"] == KEY_STREAM:  # the key stream: a stream like a patient's, in the heads map too
                key_events += 1
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
    if key_events:
        print(f"key stream   {key_events} events of {KEY_STREAM} (signing keys registered and revoked), decoded")
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
