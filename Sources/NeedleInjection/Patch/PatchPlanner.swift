import NeedleContract

/// Turns a pod and its effective settings into JSON Patch `add` operations (DESIGN §3.2). Every map or list
/// that is missing or null is created whole by one `add` before anything is added into it.
public enum PatchPlanner {
    public static let xtablesLockVolumeBase = "needle-init-xtables-lock"

    /// Where the patch adds, parsed once rather than per review.
    private enum Path {
        static let metadata: JSONPointer = "/metadata"
        static let annotations: JSONPointer = "/metadata/annotations"
        static let labels: JSONPointer = "/metadata/labels"
        static let volumes: JSONPointer = "/spec/volumes"
        static let initContainers: JSONPointer = "/spec/initContainers"
        static let containers: JSONPointer = "/spec/containers"
    }

    public static func plan(pod: PodView, namespace: String, settings: ProxySettings,
                            configuration: InjectorConfiguration, inheritedAnnotations: [String: String]) -> [PatchOperation] {
        let takenVolumes = Set(pod.volumeNames)
        let xtablesLockVolume = uniqueName(xtablesLockVolumeBase, taken: takenVolumes)
        let spec = SidecarSpec(
            settings: settings, configuration: configuration, pod: pod, xtablesLockVolume: xtablesLockVolume,
            identityTokenVolume: configuration.identity == nil ? nil
                : uniqueName(Mesh.identityTokenVolume, taken: takenVolumes.union([xtablesLockVolume])))
        var operations: [PatchOperation] = []

        var annotations = inheritedAnnotations
        annotations[MeshKey.proxyVersion] = configuration.proxyVersion
        annotations[MeshKey.injectedBy] = "needle-injector/\(Mesh.version)"
        let labels = [
            MeshKey.workloadNamespaceLabel: namespace,
            MeshKey.controlPlaneNamespaceLabel: configuration.controlPlaneNamespace,
        ]
        // Never overwrite what the pod already says: the patch only adds.
        let newAnnotations = annotations.filter { pod.annotations[$0.key] == nil }
        let newLabels = labels.filter { pod.labels[$0.key] == nil }

        if pod.json["metadata"]?.objectValue == nil {
            operations.append(.add(Path.metadata, ["annotations": .object(newAnnotations.mapValues(JSONValue.string)),
                                                 "labels": .object(newLabels.mapValues(JSONValue.string))]))
        } else {
            operations += addEntries(newAnnotations, into: Path.annotations, exists: pod.hasAnnotations)
            operations += addEntries(newLabels, into: Path.labels, exists: pod.hasLabels)
        }

        operations.append(append(spec.volume, to: Path.volumes, exists: pod.hasVolumes))
        if let tokenVolume = spec.tokenVolume { operations.append(.add(Path.volumes.appendingEnd, tokenVolume)) }

        if settings.nativeSidecar {
            // First in line, so the pod's own init containers already run behind a ready proxy.
            if pod.hasInitContainers {
                operations.append(.add(Path.initContainers.appending(index: 0), spec.initContainer))
                operations.append(.add(Path.initContainers.appending(index: 1), spec.proxyContainer))
            } else {
                operations.append(.add(Path.initContainers, [spec.initContainer, spec.proxyContainer]))
            }
        } else {
            // After the pod's own init containers: no proxy runs yet to carry their redirected traffic.
            operations.append(append(spec.initContainer, to: Path.initContainers, exists: pod.hasInitContainers))
            operations.append(pod.hasContainers ? .add(Path.containers.appending(index: 0), spec.proxyContainer)
                : .add(Path.containers, [spec.proxyContainer]))
        }
        return operations
    }

    static func addEntries(_ entries: [String: String], into path: JSONPointer, exists: Bool) -> [PatchOperation] {
        guard !entries.isEmpty else { return [] }
        guard exists else { return [.add(path, .object(entries.mapValues(JSONValue.string)))] }
        return entries.sorted { $0.key < $1.key }.map { .add(path.appending($0.key), .string($0.value)) }
    }

    /// Appends to the list, or creates it holding just this element.
    static func append(_ element: JSONValue, to path: JSONPointer, exists: Bool) -> PatchOperation {
        exists ? .add(path.appendingEnd, element) : .add(path, [element])
    }

    /// `base`, or `base-2`, `base-3`, ... whichever the pod does not use yet.
    static func uniqueName(_ base: String, taken: Set<String>) -> String {
        guard taken.contains(base) else { return base }
        var suffix = 2
        while taken.contains("\(base)-\(suffix)") { suffix += 1 }
        return "\(base)-\(suffix)"
    }
}
