import HTTPTypes
import Hummingbird
import Prometheus
import WaitlistCore
import WaitlistStore

/// `GET /healthz` on the public port, for the operator's monitoring.
struct OperationsController: Sendable {
    let database: AppDatabase

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/healthz", use: health)
    }

    /// `200 ok` when the database answers a read, its last write did not fail and its disk has
    /// room; `503` with the reason otherwise. A probe never writes.
    @Sendable func health(request: Request, context: AppRequestContext) async throws -> Response {
        let report = await database.healthReport()
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"]
        if report.problem != nil { headers[.retryAfter] = String(AppDatabase.retryAfterSeconds) }
        return Response(
            status: report.problem == nil ? .ok : .serviceUnavailable, headers: headers,
            body: .init(byteBuffer: ByteBuffer(string: report.problem.map { "unavailable: \($0)\n" } ?? "ok\n")))
    }
}

/// `GET /metrics`, on a listener of its own (`WAITLIST_METRICS_ADDRESS`): the counters of this
/// process, and gauges read from the database at each scrape, so what `open` and `send` do in
/// other processes shows too. Not on the public port: how the counters move tells who signs up.
struct MetricsController: Sendable {
    let database: AppDatabase
    let metrics: PrometheusCollectorRegistry

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/metrics", use: exposeMetrics)
    }

    /// Every metric in the Prometheus text format.
    @Sendable func exposeMetrics(request: Request, context: BasicRequestContext) async throws -> Response {
        try await database.perform { [self] _ in try readGauges() }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
    }

    /// `waitlist_subscribers{course,status}` and `waitlist_mail{course,state}`, as `waitlist status` counts them.
    private func readGauges() throws {
        for course in try database.courses() {
            guard let id = course.id else { continue }
            let status = try database.status(courseId: id)
            let people: [(SubscriberStatus, Int)] = [
                (.pending, status.pending), (.confirmed, status.confirmed), (.unsubscribed, status.unsubscribed),
                (.bounced, status.bounced),
            ]
            for (state, count) in people {
                metrics.makeGauge(
                    descriptor: MetricNameDescriptor(
                        namespace: "waitlist", metricName: "subscribers", unitName: "",
                        helpText: "Subscribers by course and state, read from the database"),
                    labels: [("course", course.slug), ("status", state.rawValue)]
                ).set(Double(count))
            }
            for (state, count) in [("queued", status.mailQueued), ("sent", status.mailSent), ("failed", status.mailFailed)] {
                metrics.makeGauge(
                    descriptor: MetricNameDescriptor(
                        namespace: "waitlist", metricName: "mail", unitName: "",
                        helpText: "Mail by course and state, read from the database"),
                    labels: [("course", course.slug), ("state", state)]
                ).set(Double(count))
            }
        }
    }
}
