import DINOv2
import Foundation
import Hashing
import Kernels

/// The backbone's identity in cache keys: its variant, the file's absolute path, and the size and modification time
/// of its weights. A changed file is another backbone, so no cache ever serves features of old weights.
package enum BackboneIdentity {
    package static func key(_ model: DinoVisionTransformer, path backbone: String) -> String {
        var parts = [model.config.displayName, URL(fileURLWithPath: backbone).standardizedFileURL.path]
        for p in [backbone, backbone + "/model.safetensors"] {
            if let a = try? FileManager.default.attributesOfItem(atPath: p), (a[.type] as? FileAttributeType) == .typeRegular {
                parts.append("\(a[.size] ?? 0)-\((a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)")
            }
        }
        let key = String(SHA256.hex(Array(parts.joined(separator: "|").utf8)).prefix(16))
        // bf16 features are other features: their own key (fp32 keys unchanged, existing caches stay valid).
        return Precision.current == .bf16 ? key + "-bf16" : key
    }
}

/// What identifies one image's features: its content (SHA-256 of the file's bytes), the backbone and the resolution.
/// The key of the server's memory cache and the name of an entry in the on-disk feature cache.
package struct FeatureKey: Hashable, Sendable {
    package var sha256: String
    package var resolution: Int
    package var backbone: String

    package init(sha256: String, resolution: Int, backbone: String) {
        self.sha256 = sha256; self.resolution = resolution; self.backbone = backbone
    }

    /// The entry's file name stem on disk.
    package var name: String { "\(sha256)-\(backbone)-r\(resolution)" }
}
