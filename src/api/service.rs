//! The `Ledger` and `Clock` gRPC services: authorise, convert, call the
//! engine, convert back. No business rule lives here.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::{broadcast, watch};
use tonic::{Request, Response, Status};

use super::auth::{require, Permission};
use super::{convert, log_wire, pb, status};
use crate::domain::{Command, Notice};
use crate::engine::Engine;

/// The `isc.ledger.v1.Ledger` service.
#[derive(Debug, Clone)]
pub struct LedgerService {
    engine: Engine,
    /// Flips to true at shutdown so open `Watch` streams end and the server
    /// can drain.
    stopping: watch::Receiver<bool>,
}

impl LedgerService {
    /// A service over a running engine; `stopping` ends watch streams.
    pub fn new(engine: Engine, stopping: watch::Receiver<bool>) -> Self {
        Self { engine, stopping }
    }

    async fn write(&self, cmd: crate::domain::Command) -> Result<Response<pb::Receipt>, Status> {
        let (r, head) = self
            .engine
            .execute_with_head(cmd)
            .await
            .map_err(status::from_engine)?;
        Ok(Response::new(convert::receipt_with_head(r, head)))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Engine) -> Result<T, crate::engine::EngineError> + Send + 'static,
    ) -> Result<T, Status> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(engine))
            .await
            .map_err(|e| Status::internal(format!("read task failed: {e}")))?
            .map_err(status::from_engine)
    }
}

type NoticeStream = Pin<Box<dyn Stream<Item = Result<pb::Notice, Status>> + Send>>;
type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogRecord, Status>> + Send>>;

/// Records read from the store per chunk of a `ReadLog` stream (the log's
/// read lock is held for one chunk, never across a send).
pub const READ_LOG_CHUNK: u64 = 4096;
/// Chunks buffered ahead of a `ReadLog` client; past this the reader
/// thread waits for the client, holding no lock.
const READ_LOG_AHEAD: usize = 4;

/// Streams records `from..=to` a chunk at a time from a blocking thread;
/// checks the chain link between chunks.
fn read_log_stream(
    engine: Engine,
    from: u64,
    to: u64,
    max_batch: u32,
    stopping: watch::Receiver<bool>,
) -> LogStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<pb::LogRecord>, Status>>(READ_LOG_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut next = from;
        let mut prev: Option<crate::store::Hash> = None;
        while next <= to {
            if *stopping.borrow() {
                let _ = tx.blocking_send(Err(Status::unavailable(
                    "the server is shutting down; resume with from_seq",
                )));
                return;
            }
            let mut batcher = log_wire::Batcher::new(max_batch);
            let (mut first, mut last) = (None, None);
            let read = engine.visit_log_chunk(next, to, READ_LOG_CHUNK, &mut |r| {
                first.get_or_insert((r.seq, *r.prev_hash));
                last = Some((r.seq, *r.hash));
                batcher.push(&r.into());
            });
            if let Err(e) = read {
                let _ = tx.blocking_send(Err(status::from_engine(e)));
                return;
            }
            let broken = match (first, prev) {
                (None, _) => Some(format!("record {next} is missing from the log")),
                (Some((seq, _)), _) if seq != next => {
                    Some(format!("record {next} is missing from the log"))
                }
                (Some((_, p)), Some(h)) if p != h => {
                    Some(format!("record {next}: chain broken in the stored log"))
                }
                _ => None,
            };
            if let Some(m) = broken {
                let _ = tx.blocking_send(Err(Status::data_loss(m)));
                return;
            }
            if let Some((seq, hash)) = last {
                next = seq + 1;
                prev = Some(hash);
            }
            let msgs = batcher.finish();
            if tx.blocking_send(Ok(msgs)).is_err() {
                return; // the client went away
            }
        }
    });
    use futures::StreamExt;
    let chunks = tokio_stream::wrappers::ReceiverStream::new(rx);
    Box::pin(chunks.flat_map(|c| {
        let items: Vec<Result<pb::LogRecord, Status>> = match c {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(items)
    }))
}

struct LiveState {
    rx: broadcast::Receiver<Notice>,
    stopping: watch::Receiver<bool>,
    account: Option<String>,
    since: i64,
    last_at: i64,
    done: bool,
}

/// Live notices after the replay. A watcher that falls more than the
/// broadcast buffer behind gets `RESOURCE_EXHAUSTED` telling it where to
/// resume with `since`; the writer never waits for it.
fn live_stream(st: LiveState) -> impl Stream<Item = Result<pb::Notice, Status>> + Send {
    futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let next = tokio::select! {
                r = st.rx.recv() => r,
                _ = st.stopping.wait_for(|s| *s) => return None,
            };
            match next {
                Ok(n) => {
                    let wanted = st.account.as_deref().is_none_or(|a| a == n.account_id)
                        && (st.since == 0 || n.at > st.since);
                    if wanted {
                        st.last_at = n.at;
                        return Some((Ok(convert::notice(n)), st));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(k)) => {
                    st.done = true;
                    let msg = format!(
                        "this watcher fell {k} notices behind and was dropped; reconnect with since={} to resume",
                        st.last_at.max(st.since)
                    );
                    return Some((Err(Status::resource_exhausted(msg)), st));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn open_account(
        &self,
        req: Request<pb::OpenAccountRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        self.write(convert::open_account(req.into_inner())).await
    }

    async fn change_config(
        &self,
        req: Request<pb::ChangeConfigRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        self.write(convert::change_config(req.into_inner())?).await
    }

    async fn top_up(
        &self,
        req: Request<pb::TopUpRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        self.write(convert::top_up(req.into_inner())).await
    }

    async fn publish_price_list(
        &self,
        req: Request<pb::PublishPriceListRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::PublishPrices)?;
        self.write(convert::publish_price_list(req.into_inner())?)
            .await
    }

    async fn close_account(
        &self,
        req: Request<pb::CloseAccountRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::CloseAccount)?;
        self.write(convert::close_account(req.into_inner())).await
    }

    async fn get_account(
        &self,
        req: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::AccountView>, Status> {
        require(&req, Permission::Read)?;
        let r = req.into_inner();
        if r.min_seq > 0 {
            self.engine
                .wait_applied(r.min_seq)
                .await
                .map_err(status::from_engine)?;
        }
        let at = (r.at != 0).then_some(r.at);
        // Inline: the common case is served from memory; a past instant
        // reads one account's index in sled, which is short too.
        let v = self
            .engine
            .account_view(&r.account_id, at)
            .map_err(status::from_engine)?;
        Ok(Response::new(convert::account_view(v)))
    }

    async fn get_statement(
        &self,
        req: Request<pb::GetStatementRequest>,
    ) -> Result<Response<pb::Statement>, Status> {
        require(&req, Permission::Read)?;
        let r = req.into_inner();
        let s = self
            .blocking(move |e| e.statement(&r.account_id, r.from, r.to))
            .await?;
        Ok(Response::new(convert::statement(s)))
    }

    type WatchStream = NoticeStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        require(&req, Permission::Read)?;
        let r = req.into_inner();
        let account = (!r.account_id.is_empty()).then_some(r.account_id);
        let since = r.since;
        let acc = account.clone();
        let (replay, rx) = self
            .blocking(move |e| e.watch(acc.as_deref(), since))
            .await?;
        let last_at = replay.last().map_or(since, |n| n.at);
        let replay = futures::stream::iter(replay.into_iter().map(|n| Ok(convert::notice(n))));
        let live = live_stream(LiveState {
            rx,
            stopping: self.stopping.clone(),
            account,
            since,
            last_at,
            done: false,
        });
        use futures::StreamExt;
        Ok(Response::new(Box::pin(replay.chain(live))))
    }

    async fn get_compliance_report(
        &self,
        req: Request<pb::GetComplianceReportRequest>,
    ) -> Result<Response<pb::ComplianceReport>, Status> {
        require(&req, Permission::Compliance)?;
        let r = req.into_inner();
        let rep = self
            .engine
            .compliance(r.from, r.to)
            .map_err(status::from_engine)?;
        Ok(Response::new(convert::compliance(rep)))
    }

    async fn list_accounts(
        &self,
        req: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        require(&req, Permission::Read)?;
        let q = convert::list_query(req.into_inner())?;
        // A page walks at most its rows plus what the filters skip; inline
        // like GetAccount (the state lock is held only for the walk).
        let page = self.engine.list_accounts(&q).map_err(status::from_engine)?;
        Ok(Response::new(convert::list_page(page)))
    }

    async fn register_device(
        &self,
        req: Request<pb::RegisterDeviceRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        self.write(convert::register_device(req.into_inner())?)
            .await
    }

    async fn set_device_status(
        &self,
        req: Request<pb::SetDeviceStatusRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::DeviceStatus)?;
        self.write(convert::set_device_status(req.into_inner())?)
            .await
    }

    async fn list_devices(
        &self,
        req: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::DeviceList>, Status> {
        require(&req, Permission::Read)?;
        let id = req.into_inner().account_id;
        let devices = self.engine.list_devices(&id).map_err(status::from_engine)?;
        Ok(Response::new(convert::device_list(id, devices)))
    }

    async fn register_pbx(
        &self,
        req: Request<pb::RegisterPbxRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        self.write(convert::register_pbx(req.into_inner())).await
    }

    async fn buy_plan(
        &self,
        req: Request<pb::BuyPlanRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        self.write(convert::buy_plan(req.into_inner())).await
    }

    async fn upgrade_firmware(
        &self,
        req: Request<pb::UpgradeFirmwareRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        self.write(convert::upgrade_firmware(req.into_inner()))
            .await
    }

    async fn get_maintenance(
        &self,
        req: Request<pb::GetMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceView>, Status> {
        require(&req, Permission::Read)?;
        let v = self
            .engine
            .maintenance(&req.into_inner().pbx_id)
            .map_err(status::from_engine)?;
        Ok(Response::new(convert::maintenance_view(v)))
    }

    async fn report_incident(
        &self,
        req: Request<pb::ReportIncidentRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        self.write(convert::report_incident(req.into_inner())).await
    }

    async fn respond_incident(
        &self,
        req: Request<pb::RespondIncidentRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        let incident_id = req.into_inner().incident_id;
        self.write(Command::RespondIncident { incident_id }).await
    }

    async fn update_incident(
        &self,
        req: Request<pb::UpdateIncidentRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        let incident_id = req.into_inner().incident_id;
        self.write(Command::UpdateIncident { incident_id }).await
    }

    async fn resolve_incident(
        &self,
        req: Request<pb::ResolveIncidentRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        let incident_id = req.into_inner().incident_id;
        self.write(Command::ResolveIncident { incident_id }).await
    }

    async fn change_priority(
        &self,
        req: Request<pb::ChangePriorityRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        require(&req, Permission::AccountWrite)?;
        let r = req.into_inner();
        self.write(Command::ChangePriority {
            incident_id: r.incident_id,
            priority: r.priority,
        })
        .await
    }

    async fn get_sla_report(
        &self,
        req: Request<pb::GetSlaReportRequest>,
    ) -> Result<Response<pb::SlaReport>, Status> {
        require(&req, Permission::Read)?;
        let r = req.into_inner();
        let rep = self.blocking(move |e| e.sla_report(r.from, r.to)).await?;
        Ok(Response::new(convert::sla_report(rep)))
    }

    async fn get_tree_head(
        &self,
        req: Request<pb::GetTreeHeadRequest>,
    ) -> Result<Response<pb::SignedTreeHead>, Status> {
        require(&req, Permission::Proofs)?;
        let h = self.engine.tree_head().map_err(status::from_proof)?;
        Ok(Response::new(convert::tree_head(h)))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        require(&req, Permission::Proofs)?;
        let r = req.into_inner();
        let p = self
            .engine
            .inclusion_proof(r.seq, r.tree_size)
            .map_err(status::from_proof)?;
        Ok(Response::new(convert::inclusion_proof(p)))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        require(&req, Permission::Proofs)?;
        let r = req.into_inner();
        let p = self
            .engine
            .consistency_proof(r.first_size, r.second_size)
            .map_err(status::from_proof)?;
        Ok(Response::new(convert::consistency_proof(p)))
    }

    type ReadLogStream = LogStream;

    async fn read_log(
        &self,
        req: Request<pb::ReadLogRequest>,
    ) -> Result<Response<Self::ReadLogStream>, Status> {
        require(&req, Permission::ReadLog)?;
        let r = req.into_inner();
        let end = self.engine.log_end().map_err(status::from_engine)?;
        let to = if r.to_seq == 0 { end } else { r.to_seq };
        if to > end {
            return Err(Status::out_of_range(format!(
                "to_seq {to} is beyond the log (it ends at seq {end})"
            )));
        }
        let from = r.from_seq.max(1);
        Ok(Response::new(read_log_stream(
            self.engine.clone(),
            from,
            to,
            r.max_batch,
            self.stopping.clone(),
        )))
    }
}

/// The `isc.ledger.v1.Clock` service (only with `--clock manual`).
#[derive(Debug, Clone)]
pub struct ClockService {
    engine: Engine,
}

impl ClockService {
    /// A clock service over a running engine.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl pb::clock_server::Clock for ClockService {
    async fn set_time(
        &self,
        req: Request<pb::SetTimeRequest>,
    ) -> Result<Response<pb::SetTimeResponse>, Status> {
        require(&req, Permission::SetClock)?;
        let t = self
            .engine
            .set_time(req.into_inner().unix_seconds)
            .await
            .map_err(status::from_engine)?;
        Ok(Response::new(pb::SetTimeResponse { unix_seconds: t }))
    }

    async fn get_time(
        &self,
        req: Request<pb::GetTimeRequest>,
    ) -> Result<Response<pb::SetTimeResponse>, Status> {
        require(&req, Permission::Read)?;
        Ok(Response::new(pb::SetTimeResponse {
            unix_seconds: self.engine.clock_now(),
        }))
    }
}
