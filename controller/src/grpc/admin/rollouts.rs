//! Rollouts: the plan, admission and start, status, operator commands and
//! the audit log. Every decision is a pure function of `tierwise-common`;
//! these handlers load, call and apply.

use super::{actor, AdminApi};
use crate::grpc::ApiError;
use crate::rollout_view::RolloutStatus;
use crate::store::rollouts::RolloutError;
use crate::store::HostFilter;
use tierwise_common::plan::{plan, Plan, PlanError, PlanRequest};
use tierwise_common::promotion::ACK_SKIP_PROMOTION;
use tierwise_common::rollout::{
    admit, parse_restart_policies, steps_from_plan, AdmissionRequest, Command, ErrorThreshold,
    Refusal, RolloutOptions,
};
use tierwise_common::rules::{ACK_BREAKING, ACK_SERVER_MANAGER_PASSWORD};
use tierwise_common::trust::{signing_finding, SigningInput};
use tierwise_common::{validate_name, Catalogue, ClientWaves, Version};
use tierwise_proto::v1;
use tierwise_proto::v1::{
    ChangeRolloutRequest, GetRolloutRequest, ListAuditRequest, ListRolloutsRequest,
    PlanRolloutRequest, PlanRolloutResponse, RolloutChange, StartRolloutRequest,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};
use tracing::info;

impl AdminApi {
    /// The installation, if the controller knows it; otherwise an error that
    /// lists the ones it knows.
    pub(super) async fn known_installation(&self, installation: &str) -> Result<(), ApiError> {
        validate_name("installation", installation)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        if installation == tierwise_common::AUTO_INSTALLATION {
            return Err(ApiError::InvalidArgument(
                "`auto` is no installation: it holds the clients not placed yet (`tierwise hosts list --installation auto` shows them and why); place them with `tierwise installations map ADDRESS INSTALLATION`".into(),
            ));
        }
        let known = self.store.installations().await?;
        if known.iter().any(|name| name == installation) {
            return Ok(());
        }
        Err(ApiError::NotFound(format!(
            "no installation `{installation}`; known: {}. An installation appears when its first agent connects",
            if known.is_empty() { "none yet".to_owned() } else { known.join(", ") }
        )))
    }

    /// The catalogue in force, with the SHA-256 of its document.
    pub(super) async fn catalogue(&self) -> Result<(Catalogue, String), ApiError> {
        let stored = self.store.current_catalogue().await?.ok_or_else(|| {
            ApiError::FailedPrecondition(
                "no release catalogue imported yet; import one with `tierwise releases import FILE`".into(),
            )
        })?;
        let catalogue = Catalogue::parse(&stored.document, &stored.source).map_err(|e| {
            ApiError::Store(crate::store::StoreError::Corrupt(format!(
                "the stored catalogue: {e}"
            )))
        })?;
        Ok((
            catalogue,
            super::metadata::catalogue_sha256(&stored.document),
        ))
    }

    /// The installer stored for each role of `release`: SHA-256, length.
    pub(super) async fn stored_installers(
        &self,
        release: Version,
    ) -> Result<std::collections::BTreeMap<tierwise_common::Role, (String, u64)>, ApiError> {
        let release = release.to_string();
        let mut stored = std::collections::BTreeMap::new();
        for role in tierwise_common::Role::ALL {
            if let Some(installer) = self.store.artifact(&release, role).await? {
                stored.insert(role, installer);
            }
        }
        Ok(stored)
    }
    /// Plans from live inventory, the catalogue in force and the licence;
    /// also returns that catalogue.
    /// The plan of `installation` to `target`, with the catalogue it was
    /// made from and where its promotion stands. `skipped_by`: the operator
    /// who acknowledged `skip-promotion` (the promotion's blocker is then a
    /// warning naming them).
    pub(super) async fn make_plan(
        &self,
        installation: &str,
        target: &str,
        client_waves: &str,
        skipped_by: Option<&str>,
    ) -> Result<(Plan, Catalogue, v1::PromotionView), ApiError> {
        let target = Version::parse(target)
            .map_err(|e| ApiError::InvalidArgument(format!("target: {e}")))?;
        let chosen = if client_waves.trim().is_empty() {
            None
        } else {
            Some(
                ClientWaves::parse(client_waves)
                    .map_err(|e| ApiError::InvalidArgument(format!("client waves: {e}")))?,
            )
        };
        let waves = chosen.clone().unwrap_or_default();
        self.known_installation(installation).await?;
        let (catalogue, catalogue_sha256) = self.catalogue().await?;
        let filter = HostFilter {
            installation: Some(installation.to_owned()),
            role: None,
        };
        let hosts = self.store.list_hosts(&filter, now_ms()).await?;
        let licence = self
            .store
            .licences()
            .await?
            .into_iter()
            .find(|l| l.installation == installation);
        let packages = self.trust().web_packages(&self.store, target).await?;
        let plan_with = |waves: &ClientWaves| {
            plan(&PlanRequest {
                installation,
                hosts: &hosts,
                catalogue: &catalogue,
                licence: licence.as_ref(),
                target,
                waves,
                web_packages: Some(&packages),
            })
            .map_err(|e| match e {
                PlanError::UnknownTarget { .. } => {
                    ApiError::NotFound(format!("{e}; `tierwise releases list` shows them all"))
                }
                PlanError::NoHosts(_) | PlanError::EmptyCatalogue => {
                    ApiError::FailedPrecondition(e.to_string())
                }
            })
        };
        let mut planned = plan_with(&waves)?;
        // A breaking release locks old clients out: unless the operator
        // chose waves, a canary and then the rest.
        if chosen.is_none() && planned.clients_immediately_after_web {
            planned = plan_with(&ClientWaves::breaking_default())?;
        }
        // Whether the installers it would run are there, and signed.
        let release = self.signed_release().await?;
        let installers = self.stored_installers(target).await?;
        let named = catalogue
            .get(target)
            .map(|r| r.artifacts.clone())
            .unwrap_or_default();
        let stored: std::collections::BTreeMap<_, _> = installers
            .iter()
            .map(|(role, (sha256, _))| (*role, sha256.clone()))
            .collect();
        let sizes: std::collections::BTreeMap<_, _> = installers
            .iter()
            .map(|(role, (_, size))| (*role, *size))
            .collect();
        for finding in tierwise_common::rollout::installer_findings(&planned, &named, &stored)
            .into_iter()
            .chain(tierwise_common::rollout::disk_findings(
                &planned, &hosts, &sizes,
            ))
        {
            planned.add_finding(finding);
        }
        if let Some(finding) = signing_finding(
            &planned,
            &SigningInput {
                release: release.as_ref().map_err(Clone::clone),
                catalogue_sha256: &catalogue_sha256,
                installers: &installers,
                allow_unsigned: self.allow_unsigned,
            },
        ) {
            planned.add_finding(finding);
        }
        // Whether the installation it is promoted from ran the target long
        // enough.
        let promotion = self
            .store
            .promotion(installation)
            .await?
            .map_err(|e| ApiError::NotFound(e.to_string()))?;
        let history = match &promotion {
            Some(p) => self.store.rollouts_to(&p.from, target).await?,
            None => Vec::new(),
        };
        let state =
            tierwise_common::promotion::evaluate(promotion.as_ref(), target, &history, now_ms());
        let finding = tierwise_common::promotion::finding(installation, target, &state, skipped_by);
        let reason = finding
            .as_ref()
            .map(|f| f.reason.clone())
            .unwrap_or_default();
        if let Some(finding) = finding {
            planned.add_finding(finding);
        }
        let promotion = super::installations::promotion_view(promotion.as_ref(), &state, reason);
        Ok((planned, catalogue, promotion))
    }

    pub(super) async fn rollout_status(&self, id: &str) -> Result<RolloutStatus, ApiError> {
        let (rollout, steps) = self.store.rollout(id).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no rollout `{id}`; `tierwise rollout list` shows them"
            ))
        })?;
        let outputs = self.store.step_outputs(id).await?;
        let progress = self.store.step_progress(id).await?;
        let filter = HostFilter {
            installation: Some(rollout.installation.clone()),
            role: None,
        };
        let hosts = self.store.list_hosts(&filter, now_ms()).await?;
        let windows: Vec<_> = self
            .store
            .windows(Some(&rollout.installation))
            .await?
            .into_iter()
            .map(|(_, window)| window)
            .collect();
        let generates = steps.iter().any(|s| {
            matches!(
                s.action,
                tierwise_common::action::StepAction::GenerateWebApp { .. }
            )
        });
        // Asked (stored packages, signed metadata verified) only for a
        // rollout that generates a Web Application: a watched status
        // reads every second.
        let packages = if generates {
            Some(
                self.trust()
                    .web_packages(&self.store, rollout.target)
                    .await?,
            )
        } else {
            None
        };
        let mut status = RolloutStatus::build(
            &rollout,
            &steps,
            &outputs,
            &progress,
            &hosts,
            packages.as_ref(),
        );
        let attempts = self.store.failed_step_attempts(id).await?;
        status.set_step_histories(crate::history_view::failed_steps(&steps, &attempts));
        if let Some(backup) = self.store.rollout_backup(id).await? {
            status.set_backups(
                backup
                    .files
                    .iter()
                    .map(|file| crate::rollout_view::DatabaseBackupView::new(&backup.host_id, file))
                    .collect(),
            );
        }
        // Paused, waiting or halted: it ends when a person acts, so no end
        // is foreseen (`eta` is null).
        if rollout.state.has_expected_end() {
            let estimate = tierwise_common::rollout::estimate(
                &rollout.phases,
                &steps,
                rollout.current_phase,
                &rollout.target.to_string(),
                &self.store.durations().await?,
                &windows,
                &rollout.options,
                now_ms(),
            );
            status.eta = Some(crate::rollout_view::EtaView::from_estimate(&estimate, true));
        }
        // Said only while the current phase has steps that could start.
        let waiting = steps.iter().any(|s| {
            s.phase == rollout.current_phase
                && matches!(s.state, tierwise_common::rollout::StepState::Pending)
        });
        if rollout.state == tierwise_common::rollout::RolloutState::Running && waiting {
            let snapshot = tierwise_common::rollout::RolloutSnapshot {
                state: rollout.state,
                current_phase: rollout.current_phase,
                options: &rollout.options,
                phases: &rollout.phases,
                steps: &steps,
                hosts: &[],
                windows: &windows,
                web_packages: None,
            };
            status.waiting_for_window =
                match tierwise_common::rollout::phase_gate(&snapshot, now_ms()) {
                    tierwise_common::window::Gate::Wait { reason, .. }
                    | tierwise_common::window::Gate::Never { reason } => Some(reason),
                    _ => None,
                };
        }
        Ok(status)
    }
}

fn rollout_error(error: RolloutError) -> ApiError {
    match error {
        RolloutError::Refused {
            refusal: Refusal::NothingToSkip { .. },
            ..
        }
        | RolloutError::NotFound(_) => ApiError::NotFound(error.to_string()),
        RolloutError::AlreadyActive { .. } | RolloutError::Refused { .. } => {
            ApiError::FailedPrecondition(error.to_string())
        }
        RolloutError::Store(e) => ApiError::Store(e),
    }
}

pub(super) async fn plan_rollout(
    api: &AdminApi,
    request: Request<PlanRolloutRequest>,
) -> Result<Response<PlanRolloutResponse>, Status> {
    let request = request.into_inner();
    let (planned, _, promotion) = api
        .make_plan(
            &request.installation,
            &request.target,
            &request.client_waves,
            None,
        )
        .await?;
    // The work it would take, as measured so far (no windows: a plan is
    // the same whenever it is asked).
    let now = now_ms();
    let (phases, steps) = steps_from_plan("plan", &planned, now);
    let options = RolloutOptions {
        clients_at_once: planned.clients_immediately_after_web,
        ..RolloutOptions::default()
    };
    let mut estimate = tierwise_common::rollout::estimate(
        &phases,
        &steps,
        0,
        &planned.target.version.to_string(),
        &api.store.durations().await.map_err(ApiError::from)?,
        &[],
        &options,
        now,
    );
    // A rollout leaves out the plan's phases with nothing to do; the plan
    // lists them, so its expectations carry the plan's own phase numbers.
    let plan_phases: Vec<usize> = tierwise_common::rollout::executed_phases(&planned)
        .map(|(index, _)| index)
        .collect();
    for phase in &mut estimate.phases {
        phase.phase = plan_phases.get(phase.phase).copied().unwrap_or(phase.phase);
    }
    Ok(Response::new(PlanRolloutResponse {
        eta: Some(crate::wire::eta_to_wire(
            &crate::rollout_view::EtaView::from_estimate(&estimate, false),
        )),
        plan: Some(v1::Plan::from(&planned)),
        promotion: Some(promotion),
    }))
}

pub(super) async fn start_rollout(
    api: &AdminApi,
    request: Request<StartRolloutRequest>,
) -> Result<Response<v1::RolloutView>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    let error_threshold = if request.error_threshold.trim().is_empty() {
        RolloutOptions::default().error_threshold
    } else {
        ErrorThreshold::parse(&request.error_threshold)
            .map_err(|e| ApiError::InvalidArgument(format!("error threshold: {e}")))?
    };
    let skip_promotion = request.acks.iter().any(|a| a == ACK_SKIP_PROMOTION);
    let (planned, catalogue, promotion) = api
        .make_plan(
            &request.installation,
            &request.target,
            &request.client_waves,
            skip_promotion.then_some(actor.as_str()),
        )
        .await?;
    let mut acks: Vec<String> = request.acks.clone();
    if request.ack_breaking {
        acks.push(ACK_BREAKING.to_owned());
    }
    if request.ack_server_manager_password {
        acks.push(ACK_SERVER_MANAGER_PASSWORD.to_owned());
    }
    let stored = api
        .stored_installers(planned.target.version)
        .await?
        .into_iter()
        .map(|(role, (sha256, _))| (role, sha256))
        .collect();
    let named = catalogue
        .get(planned.target.version)
        .map(|r| r.artifacts.clone())
        .unwrap_or_default();
    let admitted = admit(&AdmissionRequest {
        plan: &planned,
        acks: &acks,
        named: &named,
        stored: &stored,
    })
    .map_err(|refused| ApiError::FailedPrecondition(refused.to_string()))?;
    let installers = admitted.installers;
    let verify_timeouts_ms =
        tierwise_common::rollout::parse_verify_timeouts(&request.verify_timeouts)
            .map_err(|e| ApiError::InvalidArgument(format!("verification deadline: {e}")))?;
    let options = RolloutOptions {
        error_threshold,
        approve_phases: request.approve_phases,
        clients_at_once: planned.clients_immediately_after_web,
        verify_timeouts_ms,
        restarts: parse_restart_policies(&request.restarts)
            .map_err(|e| ApiError::InvalidArgument(format!("restart: {e}")))?,
        task_timeout_ms: duration_or(
            &request.task_timeout,
            "--task-timeout",
            10_000,
            7 * 86_400_000,
            tierwise_common::rollout::DEFAULT_TASK_TIMEOUT_MS,
        )?,
        max_backup_age_ms: duration_or(
            &request.max_backup_age,
            "--max-backup-age",
            10_000,
            7 * 86_400_000,
            tierwise_common::rollout::DEFAULT_MAX_BACKUP_AGE_MS,
        )?,
        ..RolloutOptions::default()
    };
    let mut details = format!(
        "installation {} to {}; acknowledged: {}",
        request.installation,
        planned.target.version,
        if planned.acks_required.is_empty() {
            "nothing needed".to_owned()
        } else {
            planned.acks_required.join(", ")
        }
    );
    // In the same entry as the start itself: never one without the other.
    if skip_promotion && !promotion.reason.is_empty() {
        details.push_str(&format!("; PROMOTION SKIPPED: {}", promotion.reason));
    }
    let now = now_ms();
    let id = api
        .store
        .create_rollout(
            &request.installation,
            planned.target.version,
            &options,
            |id| {
                let (phases, mut steps) = steps_from_plan(id, &planned, now);
                for step in &mut steps {
                    step.action.attach_artifact(&installers);
                }
                (phases, steps)
            },
            &actor,
            &details,
            now,
        )
        .await
        .map_err(rollout_error)?;
    info!(rollout = %id, installation = %request.installation, target = %planned.target.version, "rollout started");
    // An emergency start past its promotion is on record, with who did it.
    if skip_promotion && !promotion.reason.is_empty() {
        tracing::warn!(rollout = %id, operator = %actor, reason = %promotion.reason, "promotion skipped");
        api.store
            .audit(
                &actor,
                "promotion skipped",
                &request.installation,
                &format!("rollout {id}: {}", promotion.reason),
                now_ms(),
            )
            .await
            .map_err(ApiError::from)?;
    }
    api.engine.wake();
    Ok(Response::new(v1::RolloutView::from(
        &api.rollout_status(&id).await?,
    )))
}

pub(super) async fn list_rollouts(
    api: &AdminApi,
    _request: Request<ListRolloutsRequest>,
) -> Result<Response<v1::RolloutList>, Status> {
    let mut list = Vec::new();
    for rollout in api.store.rollouts().await.map_err(ApiError::from)? {
        list.push(v1::RolloutView::from(
            &api.rollout_status(&rollout.id).await?,
        ));
    }
    Ok(Response::new(v1::RolloutList { rollouts: list }))
}

pub(super) async fn get_rollout(
    api: &AdminApi,
    request: Request<GetRolloutRequest>,
) -> Result<Response<v1::RolloutView>, Status> {
    let mut id = request.into_inner().id;
    if id.is_empty() {
        id = api
            .store
            .latest_rollout_id()
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound("no rollout yet; start one with `tierwise rollout start`".into())
            })?;
    }
    Ok(Response::new(v1::RolloutView::from(
        &api.rollout_status(&id).await?,
    )))
}

pub(super) async fn change_rollout(
    api: &AdminApi,
    request: Request<ChangeRolloutRequest>,
) -> Result<Response<v1::RolloutView>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    let command =
        match RolloutChange::try_from(request.change).unwrap_or(RolloutChange::Unspecified) {
            RolloutChange::Pause => Command::Pause,
            RolloutChange::Resume => Command::Resume,
            RolloutChange::Abort => Command::Abort,
            RolloutChange::Approve => Command::Approve,
            RolloutChange::SkipHost => {
                validate_name("host id", &request.host_id)
                    .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
                Command::Skip {
                    host_id: request.host_id.clone(),
                }
            }
            RolloutChange::Done => done_command(&request.task, &request.note)?,
            RolloutChange::Unspecified => {
                return Err(ApiError::InvalidArgument(
                    "say pause, resume, abort, approve, skip or done".into(),
                )
                .into())
            }
        };
    let (changed, change) = api
        .store
        .apply_command(&request.id, &command, &actor, now_ms())
        .await
        .map_err(rollout_error)?;
    info!(rollout = %changed.id, command = command.name(), details = %change.details, %actor, "rollout changed by an operator");
    // What a person did shows in the host's next report: ask for it now
    // rather than at its next probe.
    if let Some((step_id, _)) = &change.done {
        if let Some(host) = api
            .store
            .rollout(&changed.id)
            .await
            .map_err(ApiError::from)?
            .and_then(|(_, steps)| steps.into_iter().find(|s| &s.step_id == step_id))
            .map(|s| s.host_id)
        {
            api.store
                .enqueue_for_hosts(
                    &[host],
                    crate::store::outbox::HostCommand::Refresh,
                    now_ms(),
                )
                .await
                .map_err(ApiError::from)?;
            api.engine.wake_outbox();
        }
    }
    api.engine.wake();
    Ok(Response::new(v1::RolloutView::from(
        &api.rollout_status(&changed.id).await?,
    )))
}

/// A duration flag: `default` when not given.
fn duration_or(text: &str, what: &str, min: i64, max: i64, default: i64) -> Result<i64, ApiError> {
    if text.trim().is_empty() {
        return Ok(default);
    }
    tierwise_common::rollout::parse_duration_ms(text, what, min, max)
        .map_err(ApiError::InvalidArgument)
}

/// The longest note an operator may give with `done`.
const MAX_NOTE: usize = 1000;

/// `done TASK [--note TEXT]`, checked before anything is read.
fn done_command(task: &str, note: &str) -> Result<Command, ApiError> {
    let task = task.trim();
    if task.is_empty()
        || task.len() > 64
        || !task
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ApiError::InvalidArgument(
            "name the task by its id as `rollout status` lists it (e.g. r3-5), or by its kind (backup, install_server, reactivate_databases)".into(),
        ));
    }
    let note = note.trim();
    if note.chars().count() > MAX_NOTE || note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::InvalidArgument(format!(
            "the note must be at most {MAX_NOTE} printable characters"
        )));
    }
    Ok(Command::Done {
        task: task.to_owned(),
        note: note.to_owned(),
    })
}

pub(super) async fn list_audit(
    api: &AdminApi,
    request: Request<ListAuditRequest>,
) -> Result<Response<v1::AuditLog>, Status> {
    let request = request.into_inner();
    let limit = match request.limit {
        0 => 100,
        n => i64::from(n.min(10_000)),
    };
    let entries = if request.from_start || request.after_seq != 0 {
        api.store.audit_after(request.after_seq, limit).await
    } else {
        api.store.audit_log(limit).await
    }
    .map_err(ApiError::from)?;
    Ok(Response::new(v1::AuditLog {
        entries: entries.iter().map(v1::AuditEntry::from).collect(),
    }))
}

/// Verifies the whole audit log with this controller's audit key (the CLI
/// has none): the keyed hashes, the links, where the chain begins and that
/// the log ends at its recorded head.
pub(super) async fn verify_audit(
    api: &AdminApi,
    _request: Request<v1::VerifyAuditRequest>,
) -> Result<Response<v1::AuditVerification>, Status> {
    let verdict = api
        .store
        .verify_audit(crate::store::audit::key())
        .await
        .map_err(ApiError::from)?;
    let mut answer = v1::AuditVerification {
        chained_from: verdict.start.chained_from,
        keyed_from: verdict.start.keyed_from,
        ..Default::default()
    };
    match verdict.result {
        Ok(verified) => {
            answer.verified = true;
            answer.unchained = verified.unchained as i64;
            answer.chained = verified.chained as i64;
            answer.keyed = verified.keyed as i64;
            if let Some(head) = verified.head() {
                answer.head_seq = head.seq;
                answer.head_sha256 = head.sha256;
            }
        }
        Err(broken) => answer.error = broken.to_string(),
    }
    Ok(Response::new(answer))
}
