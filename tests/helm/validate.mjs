// Validates every object `helm template` rendered against the Kubernetes OpenAPI schemas
// (kubernetes-models; the Prometheus operator's CRDs for ServiceMonitor and PrometheusRule),
// then checks what the chart promises for one value set.
//
//   node validate.mjs RENDERED.yaml CASE
//
// Prints one line per object and the failed checks; exits 1 on any failure.
import { readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const [file, caseName] = process.argv.slice(2);
const docs = parseAllDocuments(readFileSync(file, "utf8"))
  .map((d) => d.toJS())
  .filter((o) => o && typeof o === "object");

const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
};

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const path =
    group === "monitoring.coreos.com"
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`
      : group
        ? `kubernetes-models/${group}/${version}/${kind}`
        : `kubernetes-models/${version}/${kind}`;
  return (await import(path))[kind];
}

for (const o of docs) {
  const name = `${o.kind}/${o.metadata?.name}`;
  let Model;
  try {
    Model = await modelFor(o.apiVersion, o.kind);
  } catch (e) {
    failures.push(`${name}: no schema for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  try {
    new Model(o).validate();
    console.log(`valid ${o.apiVersion} ${name}`);
  } catch (e) {
    failures.push(`${name}: ${e.message}`);
  }
  // Every object carries the standard labels.
  const l = o.metadata?.labels ?? {};
  for (const k of ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by", "helm.sh/chart"])
    check(l[k], `${name}: label ${k} missing`);
}

const byKind = (kind) => docs.filter((o) => o.kind === kind);
const one = (kind) => byKind(kind)[0];
const sts = one("StatefulSet");
check(sts, "no StatefulSet");
const pod = sts?.spec?.template?.spec ?? {};
const c = pod.containers?.[0] ?? {};
const config = byKind("ConfigMap").find((m) => m.data?.["vigild.yml"]);

// What every value set keeps.
check(sts?.spec?.podManagementPolicy === "Parallel", "podManagementPolicy is not Parallel");
check(pod.securityContext?.runAsNonRoot === true, "pod: runAsNonRoot");
check(pod.securityContext?.runAsUser === 10001 && pod.securityContext?.fsGroup === 10001, "pod: fixed UID/fsGroup");
check(pod.securityContext?.seccompProfile?.type === "RuntimeDefault", "pod: seccomp RuntimeDefault");
check(c.securityContext?.readOnlyRootFilesystem === true, "container: readOnlyRootFilesystem");
check(c.securityContext?.allowPrivilegeEscalation === false, "container: allowPrivilegeEscalation");
check(JSON.stringify(c.securityContext?.capabilities?.drop) === '["ALL"]', "container: drop ALL");
check(c.volumeMounts?.some((m) => m.mountPath === "/tmp") && pod.volumes?.some((v) => v.name === "tmp" && v.emptyDir),
  "/tmp is not an emptyDir");
check(c.startupProbe?.httpGet?.path === "/healthz", "startup probe on /healthz");
check(c.livenessProbe?.httpGet?.path === "/healthz", "liveness probe on /healthz");
check(c.readinessProbe?.httpGet?.path === "/readyz", "readiness probe on /readyz");
check(c.resources?.requests && c.resources?.limits, "resources");
check(sts?.spec?.template?.metadata?.annotations?.["checksum/config"], "checksum/config annotation");
check(!Object.keys(sts?.spec?.template?.metadata?.annotations ?? {}).some((k) => k.includes("rules")),
  "the rules are in the pods' checksum: a rule change would restart them");
check(byKind("Service").some((s) => s.spec.clusterIP === "None" && s.metadata.name === sts?.spec?.serviceName),
  "no headless Service named by serviceName");
check(byKind("Service").some((s) => s.spec.clusterIP !== "None"), "no client Service");
check(one("PodDisruptionBudget"), "no PodDisruptionBudget");
check(pod.topologySpreadConstraints?.length > 0, "no topology spread");
check(config, "no vigild.yml ConfigMap");
check(!/sasl\.password|password:/.test(config?.data?.["vigild.yml"] ?? ""), "a password in the ConfigMap");
const testPod = docs.find((o) => o.kind === "Pod" && o.metadata?.annotations?.["helm.sh/hook"] === "test");
check(testPod, "no helm test hook");

const args = c.args ?? [];
const env = c.env ?? [];
const secret = one("Secret");
const expect = {
  default() {
    check(sts.spec.replicas === 1, "replicas 1");
    check(!/cluster:/.test(config.data["vigild.yml"]) && !args.includes("--cluster-self"), "cluster mode with one replica");
    check(sts.spec.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage === "20Gi", "a 20Gi PVC per replica");
    check(secret && secret.data?.["api-tokens"] && secret.data?.["admin-token"], "a Secret with a generated admin token");
    check(one("ConfigMap") && byKind("ConfigMap").some((m) => m.metadata.labels?.grafana_dashboard === "1"),
      "no Grafana dashboard ConfigMap");
    check(!one("Ingress") && !one("NetworkPolicy") && !one("ServiceMonitor"), "optional objects on by default");
  },
  replicas() {
    check(sts.spec.replicas === 3, "replicas 3");
    check(args.includes("--group-instance-id") && args.includes("$(POD_NAME)"), "the pod name as group.instance.id");
    check(env.some((e) => e.name === "POD_NAME" && e.valueFrom?.fieldRef?.fieldPath === "metadata.name"), "POD_NAME from metadata.name");
    check(/brokers: kafka-0\.kafka:9092/.test(config.data["vigild.yml"]), "brokers in vigild.yml");
    // Cluster mode: each pod named by itself, every pod a peer through the headless Service.
    const y = config.data["vigild.yml"];
    check(args.join(" ").includes("--cluster-self $(POD_NAME)"), "the pod name as the cluster name");
    const peers = [0, 1, 2].map((i) =>
      `${sts.metadata.name}-${i}=http://${sts.metadata.name}-${i}.${sts.spec.serviceName}.${sts.metadata.namespace}.svc:8080`);
    check(peers.every((p) => y.includes(p)), `every pod a peer (${peers[0]} ...)`);
    check(/cursor_key_file: \/etc\/vigil\/secret\/cursor-key/.test(y), "the shared cursor key from the Secret");
    check(secret?.data?.["cursor-key"], "a cursor key in the Secret");
  },
  tls() {
    const y = config.data["vigild.yml"];
    check(/security\.protocol: SASL_SSL/.test(y), "SASL_SSL");
    check(/sasl\.mechanism: SCRAM-SHA-512/.test(y), "the SASL mechanism");
    check(/ssl\.ca\.location: \/etc\/vigil\/secret\/kafka-ca\.pem/.test(y), "the CA from the Secret");
    check(/properties_file: \/etc\/vigil\/secret\/kafka\.properties/.test(y), "the SASL credentials from the Secret");
    check(/linger\.ms/.test(y), "extra librdkafka property passed through");
    const props = Buffer.from(secret.data["kafka.properties"], "base64").toString();
    check(props.includes("sasl.username=vigil") && props.includes("sasl.password="), "credentials in the Secret");
    check(secret.data["kafka-ca.pem"], "the CA in the Secret");
    check(c.readinessProbe.httpGet.scheme === "HTTPS", "probes over HTTPS with API TLS");
    check(/cert_file: \/etc\/vigil\/tls\/tls\.crt/.test(y), "API TLS certificate");
  },
  existingSecret() {
    check(!secret, "a Secret rendered although existingSecret is set");
    check(pod.volumes.some((v) => v.secret?.secretName === "my-vigil-secret"), "existingSecret mounted");
    check(!sts.spec.template.metadata.annotations["checksum/secret"], "checksum of a Secret the chart does not make");
  },
  ingress() {
    const ing = one("Ingress");
    check(ing?.spec?.rules?.[0]?.host === "vigil.example.com", "ingress host");
    check(ing?.spec?.tls?.[0]?.secretName === "vigil-tls", "ingress TLS");
    check(ing?.spec?.ingressClassName === "nginx", "ingress class");
  },
  monitoring() {
    const sm = one("ServiceMonitor");
    check(sm?.spec?.endpoints?.[0]?.path === "/metrics", "ServiceMonitor on /metrics");
    check(sm?.spec?.selector?.matchLabels?.["app.kubernetes.io/component"] === "peers", "ServiceMonitor scrapes each pod once");
    const rules = one("PrometheusRule")?.spec?.groups?.[0]?.rules?.map((r) => r.alert) ?? [];
    for (const a of ["VigilConsumerLagGrowing", "VigilDeadLetters", "VigilRuleRollback", "VigilStoreNotWritable"])
      check(rules.includes(a), `PrometheusRule ${a}`);
  },
  networkPolicy() {
    const np = one("NetworkPolicy");
    check(np?.spec?.policyTypes?.includes("Egress") && np?.spec?.policyTypes?.includes("Ingress"), "ingress and egress");
    check(JSON.stringify(np?.spec?.egress ?? []).includes("9093"), "Kafka port egress");
    check(JSON.stringify(np?.spec?.egress ?? []).includes('"port":53'), "DNS egress");
  },
  outputs() {
    const y = config.data["vigild.yml"];
    check(/alerts_format: ecs/.test(y), "the alerts topic's format");
    check(/name: soc/.test(y) && /type: splunk_hec/.test(y) && /transport: tls/.test(y), "the outputs in vigild.yml");
    check(!/not-a-real/.test(y), "an output secret in the ConfigMap");
    check(Buffer.from(secret.data["hec-token"], "base64").toString() === "not-a-real-token", "the output secret in the Secret");
  },
  rules() {
    const rulesCm = byKind("ConfigMap").find((m) => m.metadata.labels?.["app.kubernetes.io/component"] === "rules");
    check(rulesCm?.data?.["whoami.yml"]?.includes("whoami.exe"), "the rules ConfigMap");
    check(c.volumeMounts.some((m) => m.mountPath === "/etc/vigil/rules" && !m.subPath), "rules mounted as a directory (no subPath)");
    check(/rules:\n- \/etc\/vigil\/rules/.test(config.data["vigild.yml"]), "vigild reads the mounted rules");
    check(/rules_watch: 5s/.test(config.data["vigild.yml"]), "the rules watch interval");
    check(/mapping: \/usr\/share\/vigil\/rules\/mappings\/ecs-windows\.yml/.test(config.data["vigild.yml"]), "the ECS mapping");
  },
};
// vigild.yml as rendered, for `vigild --check-config`.
if (config) writeFileSync(`${file}.vigild.yml`, config.data["vigild.yml"]);

if (!expect[caseName]) failures.push(`unknown case ${caseName}`);
else expect[caseName]();

for (const f of failures) console.log(`FAIL ${caseName}: ${f}`);
console.log(`${caseName}: ${docs.length} objects, ${failures.length} failures`);
process.exit(failures.length ? 1 : 0);
