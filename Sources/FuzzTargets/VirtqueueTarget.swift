import Devices
import GuestMemory

/// A driver that wrote anything at all into its rings and descriptors (virtio 1.2 §2.7): 64 KiB
/// of guest memory from the input, a queue whose size and features the input picks, walked as
/// the devices walk it, each chain read as a vsock TX packet (§5.10.6) and its used element
/// pushed back.
enum VirtqueueTarget {
    static let memorySize = 64 << 10

    static func run(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let memory: GuestMemory
        do { memory = try GuestMemory(layout: [(guestAddress: 0, size: UInt64(memorySize))]) } catch {
            violated("64 KiB of guest memory: \(error)")
        }
        let fill = Array(input.dropFirst(2).prefix(memorySize))
        do { try memory.write(fill, at: 0) } catch { violated("writing \(fill.count) bytes at 0: \(error)") }
        // Queue size 1 to 256 (powers of two), the rings at fixed places, features from the input.
        let size = 1 << Int(input[0] % 9)
        let features = (input[1] & 1 != 0 ? VirtioFeature.indirectDescriptors : 0) | (input[1] & 2 != 0 ? VirtioFeature.eventIndex : 0)
        let queue: SplitQueue
        do {
            queue = try SplitQueue(size: size, maximumSize: 256, descriptorTable: 0, availableRing: 0x4000, usedRing: 0x6000,
                                   memory: memory, features: features)
        } catch {
            violated("a valid queue configuration was refused: \(error)")
        }
        // A driver can publish any index; the walk ends at an error or after what a queue holds.
        for _ in 0..<(2 * size + 2) {
            let chain: DescriptorChain
            do {
                guard let next = try queue.pop() else { return }
                chain = next
            } catch {
                return  // the device stops on a broken queue
            }
            guard chain.readableLength + chain.writableLength <= UInt32.max else { violated("a chain of 4 GiB or more") }
            let bytes: [UInt8]
            do { bytes = try chain.readReadable(maxBytes: VsockHeader.size + Vsock.maximumPayload) } catch { return }
            if let header = VsockHeader(decoding: bytes) {
                guard header.bytes == Array(bytes.prefix(VsockHeader.size)) else { violated("a vsock header re-encodes to other bytes") }
                _ = VsockPacketRejection.check(header, payloadBytes: bytes.count - VsockHeader.size, guestCID: 3)
            }
            _ = try? chain.writeWritable(Array(bytes.prefix(64)))
            do { _ = try queue.push(head: chain.head, length: UInt32(min(chain.writableLength, 64))) } catch { return }
        }
    }
}
