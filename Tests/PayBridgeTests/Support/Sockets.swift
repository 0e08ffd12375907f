import Foundation
import Synchronization

/// Raw TCP peers that misbehave on purpose, on 127.0.0.1.
enum Sockets {
    /// A listening socket bound to an ephemeral port.
    static func listener(backlog: Int32) throws -> (fd: Int32, port: Int) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, backlog) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A port nothing listens on (connections are refused).
    static func closedPort() throws -> Int {
        let (fd, port) = try listener(backlog: 1)
        _ = Glibc.close(fd)
        return port
    }

    /// One raw HTTP/1.1 exchange on 127.0.0.1 (send `Connection: close`): the whole answer,
    /// "" when nothing answered within 10 s. For methods the client has not (HEAD).
    static func exchange(port: Int, _ request: String) -> String {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { _ = Glibc.close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return "" }
        let bytes = Array(request.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { return "" }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            answer += buffer[0..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// Connects without waiting (to fill a backlog).
    static func connect(to port: Int) -> Int32 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return fd
    }
}

/// Accepts every connection and resets it at once (RST, not FIN).
final class ResettingListener: Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        (fd, port) = try Sockets.listener(backlog: 64)
        let fd = self.fd
        Thread.detachNewThread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                _ = Glibc.close(client)
            }
        }
    }

    func close() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)); _ = Glibc.close(fd) }
}

/// A listener whose accept queue is full: new connections hang in the handshake, so only a
/// connect timeout ends them.
final class FullBacklogListener: Sendable {
    let port: Int
    private let fds: [Int32]

    init() throws {
        let (fd, port) = try Sockets.listener(backlog: 0)
        self.port = port
        var fds = [fd]
        for _ in 0..<3 { fds.append(Sockets.connect(to: port)) }
        self.fds = fds
        // The queue is full once the first connection is established (writable); at most 5 s.
        var first = pollfd(fd: fds[1], events: Int16(POLLOUT), revents: 0)
        _ = poll(&first, 1, 5000)
    }

    func close() { for fd in fds { _ = Glibc.close(fd) } }
}
