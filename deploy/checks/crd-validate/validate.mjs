// Reads a JSON array of Kubernetes objects on stdin; validates each KEDA / Prometheus-operator
// object against its CRD's OpenAPI schema (compiled by kubernetes-models). Prints one JSON line
// per object: {"kind", "name", "ok", "error"?}; objects of other kinds are reported as
// {"ok": null} (no schema here). Exit 0 unless the input cannot be read.
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const models = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

const docs = JSON.parse(readFileSync(0, "utf8"));
for (const doc of docs) {
  const Model = models[`${doc.apiVersion}/${doc.kind}`];
  const out = { kind: doc.kind, name: doc.metadata?.name ?? null, ok: null };
  if (Model) {
    try {
      new Model(doc).validate();
      out.ok = true;
    } catch (e) {
      out.ok = false;
      out.error = String(e.message ?? e);
    }
  }
  console.log(JSON.stringify(out));
}
