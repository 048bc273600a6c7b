import HTTPTypes
import Hummingbird
import Prometheus

/// `GET /healthz` and `GET /metrics`, for the operator's monitoring.
struct OperationsController: Sendable {
    let database: AppDatabase
    let metrics: PrometheusCollectorRegistry

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/healthz", use: health)
        router.get("/metrics", use: exposeMetrics)
    }

    /// `200 ok` when the database answers, `503` otherwise.
    @Sendable func health(request: Request, context: AppRequestContext) async throws -> Response {
        let healthy = await database.isHealthy()
        return Response(
            status: healthy ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: healthy ? "ok\n" : "database unavailable\n")))
    }

    /// Every metric in the Prometheus text format.
    @Sendable func exposeMetrics(request: Request, context: AppRequestContext) async throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
    }
}
