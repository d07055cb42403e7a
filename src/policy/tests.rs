//! The decision, as a table of cases anyone can read, then every combination of inputs
//! checked against the rules that must always hold, then the same rules on random inputs.

use proptest::prelude::*;

use super::*;

const NOW: UnixTime = 1_000_000;

fn set(methods: &[Method]) -> Methods {
    methods.iter().copied().collect()
}

fn company(mode: Mode) -> CompanyPolicy {
    CompanyPolicy {
        mode,
        methods: set(&[Method::Totp, Method::Email]),
        ..CompanyPolicy::default()
    }
}

fn user(factors: &[Method]) -> UserState {
    UserState {
        factors: set(factors),
        ..UserState::default()
    }
}

fn opted_out(factors: &[Method], expires_at: Option<UnixTime>) -> UserState {
    UserState {
        opt_out: Some(OptOut {
            reason: "travelling".into(),
            expires_at,
        }),
        ..user(factors)
    }
}

const NO_STEP_UP: Request = Request { wants_mfa: false };
const STEP_UP: Request = Request { wants_mfa: true };

fn enforced(methods: Option<&[Method]>) -> Floor {
    Floor::of(None, Some(methods.map(set)))
}

fn both() -> Methods {
    set(&[Method::Totp, Method::Email])
}

#[test]
fn the_decision_table() {
    use Decision::*;
    let skip = |limit: Option<u32>, deadline: Option<UnixTime>| CompanyPolicy {
        allow_skip: true,
        skip_limit: limit,
        skip_deadline: deadline,
        ..company(Mode::Required)
    };
    let skipped = |count: u32| UserState {
        skipped: true,
        skip_count: count,
        ..user(&[])
    };
    let cases: Vec<(&str, CompanyPolicy, Floor, UserState, Request, Decision)> = vec![
        (
            "off: nobody is challenged",
            company(Mode::Off),
            Floor::none(),
            user(&[]),
            NO_STEP_UP,
            Pass,
        ),
        (
            "off: not even enrolled users (seed 000)",
            company(Mode::Off),
            Floor::none(),
            user(&[Method::Totp]),
            NO_STEP_UP,
            Pass,
        ),
        (
            "off: step-up cannot be met",
            company(Mode::Off),
            Floor::none(),
            user(&[Method::Totp]),
            STEP_UP,
            Refuse {
                reason: RefuseReason::MfaUnavailable,
            },
        ),
        (
            "optional, not enrolled: pass",
            company(Mode::Optional),
            Floor::none(),
            user(&[]),
            NO_STEP_UP,
            Pass,
        ),
        (
            "optional, enrolled: challenged",
            company(Mode::Optional),
            Floor::none(),
            user(&[Method::Totp]),
            NO_STEP_UP,
            Challenge {
                methods: set(&[Method::Totp]),
            },
        ),
        (
            "optional, step-up, not enrolled: must enrol",
            company(Mode::Optional),
            Floor::none(),
            user(&[]),
            STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "required, not enrolled: must enrol",
            company(Mode::Required),
            Floor::none(),
            user(&[]),
            NO_STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "required, enrolled: challenged with usable factors",
            company(Mode::Required),
            Floor::none(),
            user(&[Method::Totp, Method::Sms]),
            NO_STEP_UP,
            Challenge {
                methods: set(&[Method::Totp]),
            },
        ),
        (
            "required, only a disallowed factor: must enrol",
            company(Mode::Required),
            Floor::none(),
            user(&[Method::Sms]),
            NO_STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "required, skip allowed: may enrol",
            skip(None, None),
            Floor::none(),
            user(&[]),
            NO_STEP_UP,
            MayEnrol { methods: both() },
        ),
        (
            "required, skip remembered: pass",
            skip(None, None),
            Floor::none(),
            skipped(1),
            NO_STEP_UP,
            Pass,
        ),
        (
            "required, skips left: asked again",
            skip(Some(3), None),
            Floor::none(),
            skipped(2),
            NO_STEP_UP,
            MayEnrol { methods: both() },
        ),
        (
            "required, skips used up: must enrol",
            skip(Some(3), None),
            Floor::none(),
            skipped(3),
            NO_STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "required, before the skip deadline: remembered",
            skip(None, Some(NOW + 1)),
            Floor::none(),
            skipped(1),
            NO_STEP_UP,
            Pass,
        ),
        (
            "required, past the skip deadline: must enrol",
            skip(None, Some(NOW)),
            Floor::none(),
            skipped(1),
            NO_STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "required, skip but step-up: must enrol",
            skip(None, None),
            Floor::none(),
            skipped(1),
            STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "required, opted out: pass",
            company(Mode::Required),
            Floor::none(),
            opted_out(&[], None),
            NO_STEP_UP,
            Pass,
        ),
        (
            "required, opted out and enrolled: pass (seed 003)",
            company(Mode::Required),
            Floor::none(),
            opted_out(&[Method::Totp], None),
            NO_STEP_UP,
            Pass,
        ),
        (
            "required, opt-out expired: must enrol",
            company(Mode::Required),
            Floor::none(),
            opted_out(&[], Some(NOW)),
            NO_STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "opted out, step-up: challenged",
            company(Mode::Required),
            Floor::none(),
            opted_out(&[Method::Totp], None),
            STEP_UP,
            Challenge {
                methods: set(&[Method::Totp]),
            },
        ),
        (
            "enforced over company off",
            company(Mode::Off),
            enforced(None),
            user(&[]),
            NO_STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "enforced over skip",
            skip(None, None),
            enforced(None),
            skipped(1),
            NO_STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "enforced over opt-out",
            company(Mode::Required),
            enforced(None),
            opted_out(&[], None),
            NO_STEP_UP,
            MustEnrol { methods: both() },
        ),
        (
            "enforced with narrowed methods",
            company(Mode::Optional),
            enforced(Some(&[Method::Totp])),
            user(&[Method::Email]),
            NO_STEP_UP,
            MustEnrol {
                methods: set(&[Method::Totp]),
            },
        ),
        (
            "reseller narrows past the company's list: reseller's list",
            company(Mode::Required),
            enforced(Some(&[Method::Sms])),
            user(&[]),
            NO_STEP_UP,
            MustEnrol {
                methods: set(&[Method::Sms]),
            },
        ),
        (
            "reseller minimum optional raises company off",
            company(Mode::Off),
            Floor::of(Some((Mode::Optional, None)), None),
            user(&[Method::Totp]),
            NO_STEP_UP,
            Challenge {
                methods: set(&[Method::Totp]),
            },
        ),
    ];
    for (name, company, floor, user, request, expected) in cases {
        let effective = effective(&company, &floor);
        assert_eq!(decide(&effective, &user, &request, NOW), expected, "{name}");
    }
}

#[test]
fn satisfaction_needs_mfa_unless_passing_or_skipping() {
    let pwd = Evidence {
        amr: vec!["pwd".into()],
        skipped: false,
    };
    let mfa = Evidence {
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        skipped: false,
    };
    let skipped = Evidence {
        amr: vec!["pwd".into()],
        skipped: true,
    };
    let methods = set(&[Method::Totp]);
    assert!(satisfied(&Decision::Pass, &pwd));
    for decision in [
        Decision::Challenge {
            methods: methods.clone(),
        },
        Decision::MustEnrol {
            methods: methods.clone(),
        },
    ] {
        assert!(!satisfied(&decision, &pwd));
        assert!(!satisfied(&decision, &skipped), "a skip never satisfies a must");
        assert!(satisfied(&decision, &mfa));
    }
    assert!(satisfied(&Decision::MayEnrol { methods }, &skipped));
    assert!(!satisfied(
        &Decision::Refuse {
            reason: RefuseReason::MfaUnavailable
        },
        &mfa
    ));
}

#[test]
fn acr_values_ask_for_mfa_only_when_password_alone_is_not_acceptable() {
    let v = |values: &[&str]| values.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(wants_mfa(&v(&["urn:portcullis:acr:mfa"])));
    assert!(wants_mfa(&v(&[
        "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
    ])));
    assert!(!wants_mfa(&v(&[
        "urn:portcullis:acr:mfa",
        "urn:portcullis:acr:pwd"
    ])));
    assert!(!wants_mfa(&v(&[])));
    assert!(!wants_mfa(&v(&["something-else"])));
}

/// Visits every input the decision depends on, in every combination.
fn for_all_inputs(mut visit: impl FnMut(&CompanyPolicy, &Floor, &UserState, &Request)) {
    let method_sets: Vec<Methods> = vec![
        set(&[]),
        set(&[Method::Totp]),
        set(&[Method::Email]),
        set(&[Method::Totp, Method::Email]),
    ];
    let floor_methods: Vec<Option<Methods>> =
        vec![None, Some(set(&[Method::Totp])), Some(set(&[Method::Sms]))];
    for mode in Mode::ALL {
        for methods in &method_sets {
            for allow_skip in [false, true] {
                for skip_limit in [None, Some(0), Some(2)] {
                    for skip_deadline in [None, Some(NOW), Some(NOW + 10)] {
                        let company = CompanyPolicy {
                            mode,
                            methods: methods.clone(),
                            allow_skip,
                            skip_limit,
                            skip_deadline,
                            ..CompanyPolicy::default()
                        };
                        for floor_mode in Mode::ALL {
                            for floor_methods in &floor_methods {
                                let floor = Floor {
                                    mode: floor_mode,
                                    methods: floor_methods.clone(),
                                };
                                for opt_out in [None, Some(None), Some(Some(NOW)), Some(Some(NOW + 10))] {
                                    for (skipped, skip_count) in [(false, 0), (true, 1), (true, 2)] {
                                        for factors in &method_sets {
                                            let user = UserState {
                                                opt_out: opt_out.map(|expires_at| OptOut {
                                                    reason: "r".into(),
                                                    expires_at,
                                                }),
                                                skipped,
                                                skip_count,
                                                factors: factors.clone(),
                                            };
                                            for wants_mfa in [false, true] {
                                                visit(&company, &floor, &user, &Request { wants_mfa });
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The rules every decision obeys.
fn check_invariants(
    company: &CompanyPolicy,
    floor: &Floor,
    user: &UserState,
    request: &Request,
) -> Result<(), String> {
    let eff = effective(company, floor);
    let decision = decide(&eff, user, request, NOW);
    let fail = |rule: &str| {
        Err(format!(
            "{rule}: {company:?} {floor:?} {user:?} {request:?} -> {decision:?}"
        ))
    };
    let lets_through = matches!(decision, Decision::Pass | Decision::MayEnrol { .. });
    // Enforcement is never weakened by a company setting, an opt-out or a skip.
    if floor.enforces() && lets_through {
        return fail("enforced MFA let a user through without a second factor");
    }
    // The effective mode is never below the floor, nor the company's own.
    if eff.mode < floor.mode || eff.mode < company.mode {
        return fail("effective mode below the floor or the company");
    }
    // The effective methods stay within the reseller's list.
    if let Some(allowed) = &floor.methods
        && !eff.methods.is_subset(allowed)
    {
        return fail("a method outside the reseller's list");
    }
    // A step-up request never passes on a password alone.
    if request.wants_mfa && lets_through {
        return fail("step-up passed without a second factor");
    }
    // Off means nobody is challenged or asked to enrol.
    if eff.mode == Mode::Off && !matches!(decision, Decision::Pass | Decision::Refuse { .. }) {
        return fail("MFA off but the user was asked for a factor");
    }
    match &decision {
        Decision::Challenge { methods } => {
            if methods.is_empty() || !methods.is_subset(&user.factors) || !methods.is_subset(&eff.methods) {
                return fail("a challenge with a factor the user lacks or the policy forbids");
            }
        }
        Decision::MustEnrol { methods } | Decision::MayEnrol { methods } => {
            if methods.is_empty() || *methods != eff.methods {
                return fail("enrolment not offering exactly the allowed methods");
            }
            if user.factors.intersection(&eff.methods).next().is_some() {
                return fail("asked to enrol while holding a usable factor");
            }
        }
        Decision::Pass | Decision::Refuse { .. } => {}
    }
    // Skips are offered only where the company allows them and nothing enforces.
    if matches!(decision, Decision::MayEnrol { .. }) && (!company.allow_skip || floor.enforces()) {
        return fail("skip offered where it is not allowed");
    }
    // A required policy passes a user without factors only through an allowed skip or an
    // allowed, active opt-out.
    if eff.mode == Mode::Required && decision == Decision::Pass && !request.wants_mfa {
        let usable = user.factors.intersection(&eff.methods).next().is_some();
        let exempt = eff.opt_out_allowed && user.opt_out.as_ref().is_some_and(|o| o.active(NOW));
        if !(usable || exempt || (eff.allow_skip && user.skipped)) {
            return fail("required MFA passed without factor, skip or opt-out");
        }
    }
    Ok(())
}

#[test]
fn every_combination_obeys_the_rules() {
    let mut count = 0;
    for_all_inputs(|company, floor, user, request| {
        if let Err(violation) = check_invariants(company, floor, user, request) {
            panic!("{violation}");
        }
        count += 1;
    });
    assert!(count > 100_000, "the sweep covers {count} combinations");
}

fn arb_methods() -> impl Strategy<Value = Methods> {
    proptest::collection::btree_set(
        prop_oneof![
            Just(Method::Totp),
            Just(Method::Email),
            Just(Method::Sms),
            Just(Method::Webauthn)
        ],
        0..=4,
    )
}

fn arb_mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Off), Just(Mode::Optional), Just(Mode::Required)]
}

proptest! {
    #[test]
    fn enforcement_can_never_be_weakened(
        mode in arb_mode(),
        methods in arb_methods(),
        allow_skip in any::<bool>(),
        skip_limit in proptest::option::of(0u32..5),
        skip_deadline in proptest::option::of(NOW - 100..NOW + 100),
        narrowed in proptest::option::of(arb_methods()),
        minimum in proptest::option::of((arb_mode(), proptest::option::of(arb_methods()))),
        opt_out in proptest::option::of(proptest::option::of(NOW - 100..NOW + 100)),
        skipped in any::<bool>(),
        skip_count in 0u32..5,
        factors in arb_methods(),
        wants_mfa in any::<bool>(),
    ) {
        let company = CompanyPolicy { mode, methods, allow_skip, skip_limit, skip_deadline, ..CompanyPolicy::default() };
        let floor = Floor::of(minimum, Some(narrowed));
        let user = UserState {
            opt_out: opt_out.map(|expires_at| OptOut { reason: "r".into(), expires_at }),
            skipped,
            skip_count,
            factors,
        };
        let request = Request { wants_mfa };
        prop_assert!(floor.enforces());
        let decision = decide(&effective(&company, &floor), &user, &request, NOW);
        prop_assert!(!matches!(decision, Decision::Pass | Decision::MayEnrol { .. }), "{:?}", decision);
        prop_assert!(check_invariants(&company, &floor, &user, &request).is_ok());
    }

    #[test]
    fn raising_the_floor_never_lets_more_through(
        mode in arb_mode(),
        methods in arb_methods(),
        allow_skip in any::<bool>(),
        low in arb_mode(),
        high in arb_mode(),
        skipped in any::<bool>(),
        factors in arb_methods(),
    ) {
        let (low, high) = (low.min(high), low.max(high));
        let company = CompanyPolicy { mode, methods, allow_skip, ..CompanyPolicy::default() };
        let user = UserState { skipped, skip_count: u32::from(skipped), factors, ..UserState::default() };
        let pass = |floor_mode| {
            let floor = Floor::of(Some((floor_mode, None)), None);
            decide(&effective(&company, &floor), &user, &NO_STEP_UP, NOW) == Decision::Pass
        };
        // A password alone getting through under the higher floor implies it did under the lower.
        prop_assert!(!pass(high) || pass(low));
    }
}
