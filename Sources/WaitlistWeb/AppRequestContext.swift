import HTTPTypes
import Hummingbird
import NIOCore
import WaitlistCore
import WaitlistStore

/// The request context of every route: the peer's address, and a body limit of 16 KiB.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The socket's peer; `nil` in router tests, which have no socket.
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// Bodies over this many bytes get `413`: a signup is a few hundred.
    public var maxUploadSize: Int { 16 * 1024 }
}
