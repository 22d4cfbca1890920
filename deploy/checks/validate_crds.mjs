// Validates every rendered custom resource against its schema from the kubernetes-models
// packages (KEDA, Istio, Prometheus Operator). Kinds no package covers (the CSI driver's
// SecretProviderClass, Flagger's Canary) get a structural check of the fields the chart relies
// on, so a typo there fails too. Reads JSON objects ([{file, object}]) on stdin.
// Usage: node validate_crds.mjs < objects.json   (NODE_PATH must reach the tool cache)
import { readFileSync } from "node:fs";

const modules = {
  "networking.istio.io/v1": "@kubernetes-models/istio/networking.istio.io/v1",
  "security.istio.io/v1": "@kubernetes-models/istio/security.istio.io/v1",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

// Minimal contracts for kinds without a published model: required paths and their types.
const structural = {
  "secrets-store.csi.x-k8s.io/v1/SecretProviderClass": {
    "spec.provider": "string",
    "spec.parameters.keyvaultName": "string",
    "spec.parameters.tenantId": "string",
    "spec.parameters.objects": "string",
  },
  "flagger.app/v1beta1/Canary": {
    "spec.targetRef.name": "string",
    "spec.service.port": "number",
    "spec.analysis.interval": "string",
    "spec.analysis.threshold": "number",
    "spec.analysis.stepWeights": "array",
  },
};

const get = (obj, path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
const typeOf = (v) => (Array.isArray(v) ? "array" : typeof v);

const input = JSON.parse(readFileSync(0, "utf8"));
let failures = 0;
let checked = 0;
const loaded = {};
for (const { file, object } of input) {
  const id = `${file}: ${object.kind}/${object.metadata?.name}`;
  const key = `${object.apiVersion}/${object.kind}`;
  try {
    if (modules[object.apiVersion]) {
      loaded[object.apiVersion] ??= await import(modules[object.apiVersion]);
      const Model = loaded[object.apiVersion][object.kind];
      if (!Model) throw new Error(`no model for ${key}`);
      new Model(object).validate();
    } else if (structural[key]) {
      for (const [path, want] of Object.entries(structural[key])) {
        const got = typeOf(get(object, path));
        if (got !== want) throw new Error(`${path} must be ${want}, is ${got}`);
      }
    } else {
      throw new Error(`unknown custom resource ${key}: add a model or a structural contract`);
    }
    checked += 1;
  } catch (e) {
    failures += 1;
    console.log(`  INVALID ${id}: ${String(e.message).split("\n").slice(0, 4).join(" | ")}`);
  }
}
console.log(`  custom resources: ${checked} valid, ${failures} invalid`);
process.exit(failures ? 1 : 0);
