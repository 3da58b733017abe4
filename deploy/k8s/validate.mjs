// Offline validation of Kubernetes manifests (no cluster, no network).
//
//   node deploy/k8s/validate.mjs [--external Kind/name]... FILE...
//
// Needs the npm packages kubernetes-models@5 and yaml@2 (resolved from NODE_PATH, e.g.
// `npm install --prefix DIR kubernetes-models@5 yaml@2` and NODE_PATH=DIR/node_modules).
// For every YAML document of every FILE:
//   1. the schema of its apiVersion/kind (kubernetes-models' bundled OpenAPI validators);
//   2. strict fields: a key the API type does not have is an error (a typo such as
//      `readinesProbe` would otherwise be ignored by the schema check and by the API server);
//      the field lists come from the models' type declarations;
//   3. KEDA ScaledObject (keda.sh/v1alpha1, not in kubernetes-models): required fields and
//      known keys only;
// and across the documents of one FILE (a rendered kustomization):
//   4. references: ConfigMaps and Secrets mounted (also through projected volumes; the keys
//      picked by `items` must exist when the object is in the file) or used by env, HPA /
//      ScaledObject / PDB /
//      Service targets, probe and Service port names, StatefulSet serviceName; objects made
//      elsewhere are named with --external Kind/name (e.g. Secret/tamgate-keys).
// Prints one line per problem and "N passed, N failed" (documents); exit 1 on any failure.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(join(process.cwd(), "noop.js"));
const paths = (process.env.NODE_PATH || "").split(":").filter(Boolean);
function resolvePkg(spec) {
  return require.resolve(spec, { paths: [...paths, process.cwd()] });
}
const { parseAllDocuments } = await import(pathToFileURL(resolvePkg("yaml")).href);
const modelsDir = dirname(resolvePkg("kubernetes-models/package.json"));
const nodeModules = dirname(modelsDir);

// ---- strict fields from the models' .d.ts files ----
const ifaceCache = new Map();
function loadIface(dts) {
  if (ifaceCache.has(dts)) return ifaceCache.get(dts);
  let result = null;
  if (existsSync(dts)) {
    const text = readFileSync(dts, "utf8");
    const imports = new Map();
    for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
      const target = m[2].startsWith(".")
        ? join(dirname(dts), m[2].replace(/\.js$/, "") + ".d.ts")
        : join(nodeModules, m[2].replace(/\.js$/, "") + ".d.ts");
      imports.set(m[1], target);
    }
    const start = text.search(/^export interface \w+/m);
    if (start >= 0) {
      const body = text.slice(start, text.indexOf("\n}", start));
      const props = new Map();
      if (/extends TypeMeta/.test(body.split("\n")[0])) {
        props.set("apiVersion", "string");
        props.set("kind", "string");
      }
      // `    "name"?: Type;` on one line, or a map type `{` ... `    };` over several.
      let open = null;
      for (const line of body.split("\n")) {
        if (open !== null) {
          if (/^ {4}\S/.test(line)) open = null;
          continue;
        }
        const m = /^ {4}"([^"]+)"\??: (.+)$/.exec(line);
        if (!m) continue;
        if (m[2].endsWith(";")) {
          props.set(m[1], m[2].slice(0, -1));
        } else {
          props.set(m[1], "map");
          open = m[1];
        }
      }
      result = { props, imports };
    }
  }
  ifaceCache.set(dts, result);
  return result;
}

function strict(value, dts, path, errors) {
  const iface = loadIface(dts);
  if (!iface || value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, v] of Object.entries(value)) {
    if (!iface.props.has(key)) {
      errors.push(`${path}/${key}: unknown field`);
      continue;
    }
    const type = iface.props.get(key).trim();
    let m = /^Array<(\w+)>$/.exec(type);
    if (m && iface.imports.has(m[1]) && Array.isArray(v)) {
      v.forEach((e, i) => strict(e, iface.imports.get(m[1]), `${path}/${key}/${i}`, errors));
      continue;
    }
    m = /^(\w+)$/.exec(type);
    if (m && iface.imports.has(m[1])) strict(v, iface.imports.get(m[1]), `${path}/${key}`, errors);
  }
}

// ---- KEDA ScaledObject (a CRD): required fields and known keys ----
const kedaSpec = ["scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
  "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"];
const kedaTrigger = ["type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"];
function checkScaledObject(o, errors) {
  const known = (obj, keys, path) => {
    for (const k of Object.keys(obj || {})) if (!keys.includes(k)) errors.push(`${path}/${k}: unknown field`);
  };
  known(o, ["apiVersion", "kind", "metadata", "spec"], "");
  const s = o.spec;
  if (!s || typeof s !== "object") { errors.push("/spec: required"); return; }
  known(s, kedaSpec, "/spec");
  if (!s.scaleTargetRef || typeof s.scaleTargetRef.name !== "string") errors.push("/spec/scaleTargetRef/name: required");
  for (const k of ["pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"]) {
    if (k in s && !Number.isInteger(s[k])) errors.push(`/spec/${k}: must be an integer`);
  }
  if (!Array.isArray(s.triggers) || s.triggers.length === 0) { errors.push("/spec/triggers: required"); return; }
  s.triggers.forEach((t, i) => {
    known(t, kedaTrigger, `/spec/triggers/${i}`);
    if (typeof t.type !== "string") errors.push(`/spec/triggers/${i}/type: required`);
    for (const [k, v] of Object.entries(t.metadata || {})) {
      if (typeof v !== "string") errors.push(`/spec/triggers/${i}/metadata/${k}: must be a string`);
    }
  });
}

// ---- cross references within one rendered file ----
const podKinds = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"];
function matches(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);
}
function checkRefs(objs, external, report) {
  const have = new Set(external);
  for (const { o } of objs) have.add(`${o.kind}/${o.metadata?.name}`);
  const need = (w, ref) => { if (!have.has(ref)) report(w, `references ${ref}, which is not defined`); };
  // Keys of the ConfigMaps and Secrets defined in this file (not of --external ones).
  const keysOf = new Map();
  for (const { o } of objs) {
    if (o.kind !== "ConfigMap" && o.kind !== "Secret") continue;
    keysOf.set(`${o.kind}/${o.metadata?.name}`, new Set([
      ...Object.keys(o.data || {}), ...Object.keys(o.stringData || {}), ...Object.keys(o.binaryData || {})]));
  }
  // A mount that picks items by key: each key must exist (a typo would fail the pod's start).
  const needKeys = (w, kind, name, items) => {
    const ref = `${kind}/${name}`;
    need(w, ref);
    const keys = keysOf.get(ref);
    if (!keys) return;
    for (const it of items || []) {
      if (!keys.has(it.key)) report(w, `uses key ${it.key} of ${ref}, which has no such key`);
    }
  };
  const pods = objs.filter(({ o }) => podKinds.includes(o.kind));
  for (const { o, w } of pods) {
    const t = o.spec?.template;
    if (!matches(o.spec?.selector?.matchLabels, t?.metadata?.labels)) report(w, "selector does not match the pod template labels");
    if (o.kind === "StatefulSet" && o.spec.serviceName) need(w, `Service/${o.spec.serviceName}`);
    const ps = t?.spec || {};
    if (ps.serviceAccountName) need(w, `ServiceAccount/${ps.serviceAccountName}`);
    for (const v of ps.volumes || []) {
      if (v.configMap && !v.configMap.optional) needKeys(w, "ConfigMap", v.configMap.name, v.configMap.items);
      if (v.secret && !v.secret.optional) needKeys(w, "Secret", v.secret.secretName, v.secret.items);
      for (const src of v.projected?.sources || []) {
        if (src.configMap && !src.configMap.optional) needKeys(w, "ConfigMap", src.configMap.name, src.configMap.items);
        if (src.secret && !src.secret.optional) needKeys(w, "Secret", src.secret.name, src.secret.items);
      }
    }
    const vols = new Set((ps.volumes || []).map((v) => v.name));
    for (const c of o.spec?.volumeClaimTemplates || []) vols.add(c.metadata?.name);
    for (const c of [...(ps.containers || []), ...(ps.initContainers || [])]) {
      for (const e of c.envFrom || []) {
        if (e.configMapRef && !e.configMapRef.optional) need(w, `ConfigMap/${e.configMapRef.name}`);
        if (e.secretRef && !e.secretRef.optional) need(w, `Secret/${e.secretRef.name}`);
      }
      for (const e of c.env || []) {
        const r = e.valueFrom || {};
        if (r.configMapKeyRef && !r.configMapKeyRef.optional) need(w, `ConfigMap/${r.configMapKeyRef.name}`);
        if (r.secretKeyRef && !r.secretKeyRef.optional) need(w, `Secret/${r.secretKeyRef.name}`);
      }
      for (const m of c.volumeMounts || []) {
        if (!vols.has(m.name)) report(w, `container ${c.name} mounts undefined volume ${m.name}`);
      }
      const ports = new Set((c.ports || []).map((p) => p.name).filter(Boolean));
      for (const pr of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const p = c[pr]?.httpGet?.port ?? c[pr]?.tcpSocket?.port;
        if (typeof p === "string" && !ports.has(p)) report(w, `container ${c.name} ${pr} uses undefined port ${p}`);
      }
    }
  }
  const podsMatching = (sel) => pods.filter(({ o }) => matches(sel, o.spec?.template?.metadata?.labels));
  for (const { o, w } of objs) {
    if (o.kind === "Service" && o.spec?.selector) {
      const targets = podsMatching(o.spec.selector);
      if (targets.length === 0) report(w, "selector matches no pod template");
      for (const p of o.spec.ports || []) {
        if (typeof p.targetPort !== "string") continue;
        const named = targets.some(({ o: d }) => (d.spec.template.spec.containers || [])
          .some((c) => (c.ports || []).some((cp) => cp.name === p.targetPort)));
        if (!named) report(w, `targetPort ${p.targetPort} is not a container port name`);
      }
    }
    if (o.kind === "PodDisruptionBudget" && podsMatching(o.spec?.selector?.matchLabels).length === 0) {
      report(w, "selector matches no pod template");
    }
    if (o.kind === "HorizontalPodAutoscaler" || o.kind === "ScaledObject") {
      const r = o.spec?.scaleTargetRef || {};
      need(w, `${r.kind || "Deployment"}/${r.name}`);
    }
  }
}

// ---- main ----
const args = process.argv.slice(2);
const external = [];
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--external") external.push(args[++i]);
  else files.push(args[i]);
}
let ok = 0;
let bad = 0;
for (const f of files) {
  const objs = [];
  const failed = new Set();
  const report = (w, msg) => { console.error(`FAIL ${w}: ${msg}`); failed.add(w); };
  const docs = parseAllDocuments(readFileSync(f, "utf8"), { uniqueKeys: true });
  for (const [i, d] of docs.entries()) {
    const where = `${f}#${i}`;
    if (d.errors.length) { report(where, d.errors[0].message); continue; }
    if (d.warnings.length) { report(where, d.warnings[0].message); continue; }
    const o = d.toJS();
    if (o == null) continue;
    const w = `${where} ${o.apiVersion}/${o.kind} ${o.metadata?.name ?? "(no name)"}`;
    objs.push({ o, w });
    if (typeof o.metadata?.name !== "string" || o.metadata.name === "") report(w, "metadata.name is required");
    const errors = [];
    if (o.apiVersion === "keda.sh/v1alpha1" && o.kind === "ScaledObject") {
      checkScaledObject(o, errors);
    } else {
      const dir = join(modelsDir, ...String(o.apiVersion).split("/"));
      const file = join(dir, `${o.kind}.js`);
      if (!existsSync(file)) { report(w, "unknown apiVersion/kind"); continue; }
      const M = (await import(pathToFileURL(file).href))[o.kind];
      // Go's base64 decoder (the API server) skips newlines; kustomize folds long values.
      const data = o.kind === "Secret" && o.data && typeof o.data === "object"
        ? Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, typeof v === "string" ? v.replace(/\n/g, "") : v]))
        : o.data;
      try {
        new M({ ...o, ...(data === undefined ? {} : { data }) }).validate();
      } catch (e) {
        errors.push(e.message);
      }
      strict(o, join(dir, `${o.kind}.d.ts`), "", errors);
    }
    for (const e of errors) report(w, e);
  }
  checkRefs(objs, external, report);
  const good = objs.filter(({ w }) => !failed.has(w)).length;
  ok += good;
  bad += failed.size;
  console.log(`${f}: ${objs.length} objects, ${failed.size} with problems`);
}
console.log(`${ok} passed, ${bad} failed`);
process.exit(bad ? 1 : 0);
