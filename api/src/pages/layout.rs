//! The frame of every page: landmarks, a skip link, the navigation with the language switch
//! and sign-out, the style sheet.

use maud::{html, Markup, DOCTYPE};

use careledger_projections::labels::{self, Lang};

use super::Reader;

/// A page for a signed-in reader: title, navigation, `main`.
pub fn page(reader: &Reader, title: &str, body: Markup) -> Markup {
    let lang = reader.lang.lang;
    let other = match lang {
        Lang::Nl => ("en", "English"),
        Lang::En => ("nl", "Nederlands"),
    };
    let who = format!(
        "{} ({})",
        reader.caller.name,
        match reader.caller.role {
            careledger_app::actors::AccessRole::Care(role) => labels::role(role, lang),
            _ => reader.caller.role.as_str(),
        }
    );
    frame(
        lang,
        title,
        html! {
            header.site role="banner" {
                span.brand { "careledger" }
                nav aria-label=(lang.pick("Hoofdnavigatie", "Main navigation")) {
                    ul {
                        @if reader.caller.patient.is_none() {
                            li { a href="/ui/patients" { (lang.pick("Mijn patiënten", "My patients")) } }
                        }
                        li { a href={ "?lang=" (other.0) } lang=(other.0) { (other.1) } }
                    }
                }
                span { (who) }
                form method="post" action="/ui/signout" {
                    input type="hidden" name="csrf" value=(reader.csrf);
                    button type="submit" { (lang.pick("Afmelden", "Sign out")) }
                }
            }
            main #main tabindex="-1" { (body) }
        },
    )
}

/// A page without navigation (sign-in, refusals).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    frame(
        lang,
        title,
        html! {
            header.site role="banner" { span.brand { "careledger" } }
            main #main tabindex="-1" { (body) }
        },
    )
}

fn frame(lang: Lang, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — careledger" }
                link rel="stylesheet" href="/ui/static/style.css";
            }
            body {
                a.skip href="#main" { (lang.pick("Naar de inhoud", "Skip to content")) }
                (content)
                footer role="contentinfo" {
                    (lang.pick(
                        "Individueel zorgplan (IZP) — gedeelde zorg huisarts en specialist. Tijden in Europe/Amsterdam.",
                        "Individual care plan (IZP) — shared care between GP and specialist. Times in Europe/Amsterdam.",
                    ))
                }
            }
        }
    }
}

/// Who did something, in which role and line, and when (recording time), for a provenance.
pub fn by(p: &careledger_projections::Provenance, lang: Lang) -> Markup {
    html! {
        (p.actor_name) " (" (labels::role(p.role, lang)) ", " (labels::line(p.line, lang)) "), "
        time datetime=(labels::machine_time(p.recorded_at)) { (labels::datetime(p.recorded_at, lang)) }
    }
}
