//! The notify-the-other-party rule: which line an event must be reported to.
//!
//! One rule, used by `decide` (to check acknowledgements) and by the projections (to derive
//! the messages), so the two can never disagree. A notification is named by the position of
//! the event that caused it: each event notifies at most one line.

use crate::event::{Event, NoteKind};
use crate::role::Line;

/// The line that must be told about `event`, written by `author` while shared care was
/// `shared_care` (as it stood before the event), or `None`.
///
/// - medication started, changed or stopped by one line during shared care: the other line
///   (agreement 6);
/// - a target set or withdrawn, a medication preference, a panel extension or a letter by the
///   specialist: the GP (agreements 2 and 3); the same from the GP during shared care: the specialist;
/// - a lab result or measurement recorded in the second line: the GP (agreement 5).
pub fn recipient(event: &Event, author: Line, shared_care: bool) -> Option<Line> {
    let other = author.other()?;
    let letter = |kind: NoteKind| matches!(kind, NoteKind::ReturnLetter | NoteKind::InterimLetter);
    match event {
        Event::MedicationStarted(_)
        | Event::MedicationDoseChanged(_)
        | Event::MedicationStopped(_) => shared_care.then_some(other),
        Event::TargetSet(_)
        | Event::TargetWithdrawn(_)
        | Event::MedicationPreferenceRecorded(_)
        | Event::AnnualPanelExtended(_) => (author == Line::Second || shared_care).then_some(other),
        Event::NoteAdded(note) if letter(note.kind) => {
            (author == Line::Second || shared_care).then_some(other)
        }
        Event::LabResultRecorded(_) | Event::MeasurementRecorded(_) => {
            (author == Line::Second).then_some(other)
        }
        _ => None,
    }
}

/// The line that must be told about a correction (`entered_in_error`) made in the `corrector`'s
/// line. `told` lists the lines that were told about the corrected entry and about the entries the
/// correction voids with it (the dose changes and stop of a corrected medication start), and the
/// lines that wrote those voided entries.
///
/// Whoever was told about an entry is told about its correction (agreement 6), and so is a line
/// whose own entries a correction voids. The line told is never the corrector's own: an entry is
/// corrected only in its author's line.
pub fn correction_recipient(corrector: Line, told: impl IntoIterator<Item = Line>) -> Option<Line> {
    told.into_iter().find(|line| *line != corrector)
}
