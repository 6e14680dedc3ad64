import NeedleContract

/// The injector's pure core: decision, config annotations and patch for one admission request.
public struct InjectionResult: Equatable, Sendable {
    public var decision: Decision
    /// Decision warnings first, then one per ignored config annotation.
    public var warnings: [String]
    public var configWarnings: [ConfigWarning]
    /// Empty unless the pod is injected.
    public var patch: [PatchOperation]
}

public struct Injector: Sendable {
    public let configuration: InjectorConfiguration

    public init(configuration: InjectorConfiguration = InjectorConfiguration()) {
        self.configuration = configuration
    }

    public enum Evaluation: Equatable, Sendable {
        case done(InjectionResult)
        /// The decision depends on the namespace's annotations: look them up and call again with them.
        case needsNamespace(String)
        /// A pod no patch could apply to (`PodView.shapeProblem`): answered with 400.
        case malformed(String)
    }

    public func evaluate(_ subject: AdmissionSubject, namespace: NamespaceMetadata?) -> Evaluation {
        if let problem = subject.pod?.shapeProblem { return .malformed("the pod cannot be patched: \(problem)") }
        switch InjectionPolicy.evaluate(subject, namespace: namespace) {
        case .needsNamespace:
            return .needsNamespace(effectiveNamespace(subject))
        case .decided(let decision):
            guard decision.outcome == .injected, let pod = subject.pod else {
                return .done(InjectionResult(decision: decision, warnings: decision.warnings, configWarnings: [], patch: []))
            }
            let resolution = ConfigResolver.resolve(defaults: configuration, pod: pod, namespace: namespace)
            let patch = PatchPlanner.plan(pod: pod, namespace: effectiveNamespace(subject), settings: resolution.settings,
                                          configuration: configuration, inheritedAnnotations: resolution.inheritedAnnotations)
            return .done(InjectionResult(decision: decision, warnings: decision.warnings + resolution.warnings.map(\.description),
                                         configWarnings: resolution.warnings, patch: patch))
        }
    }

    /// The request's namespace; older API servers could leave it empty, then the pod's own field counts.
    public func effectiveNamespace(_ subject: AdmissionSubject) -> String {
        subject.namespace.isEmpty ? (subject.pod?.namespace ?? "") : subject.namespace
    }
}
