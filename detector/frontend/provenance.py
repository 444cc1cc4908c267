"""C2PA provenance as evidence: who made an upload, what it declares, and whether the claim holds.

Read with `c2pa-python`. A missing manifest is the normal case (None); an unreadable or invalid
one is reported, never raised. "Declared AI-generated" means an action whose digital source type
is one of IPTC's algorithmic-media types (trained or composite).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

AI_SOURCE_TYPES = {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia",
                   "compositeSynthetic"}
TAMPER_CODES = ("dataHash.mismatch", "bmffHash.mismatch", "boxesHash.mismatch", "collectionHash.mismatch",
                "hashedURI.mismatch", "claimSignature.mismatch")

_NO_MANIFEST = ("ManifestNotFound", "NotSupported", "Other", "Io", "FileNotFound")


class Action(BaseModel):
    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None


class Provenance(BaseModel):
    state: Literal["trusted", "valid", "invalid", "tampered", "unreadable"]
    claim_generator: str | None = None
    title: str | None = None
    signer: str | None = None  # the signing certificate's common name and issuer
    actions: list[Action] = []
    declared_ai: bool = False  # an action declares generative-AI media
    failures: list[str] = []  # validation failure codes (untrusted signer, hash mismatch, ...)


class ProvenancePolicy(BaseModel):
    """What a manifest may do to the decision; `trust_anchors` is a PEM file of CAs to trust."""

    model_config = ConfigDict(extra="forbid")

    read: bool = True
    trust_anchors: Path | None = None
    declared_ai: Literal["ignore", "review", "likely_fake"] = "review"  # intact manifest saying AI made it
    tampered: Literal["ignore", "review"] = "review"  # a manifest whose hashes no longer match

    def route(self, p: Provenance | None) -> str | None:
        """The decision the manifest asks for at least, or None."""
        if p is None:
            return None
        if p.state == "tampered" and self.tampered != "ignore":
            return self.tampered
        if p.declared_ai and p.state in ("trusted", "valid") and self.declared_ai != "ignore":
            return self.declared_ai
        return None

    def read_file(self, path: str | Path) -> Provenance | None:
        if not self.read:
            return None
        return read_provenance(path, self.trust_anchors.read_text() if self.trust_anchors else None)


def read_provenance(path: str | Path, trust_anchors: str | None = None) -> Provenance | None:
    """The active C2PA manifest's story, or None when the file carries no manifest."""
    try:
        import c2pa

        context = None
        if trust_anchors:
            context = c2pa.Context.from_dict({"trust": {"trust_anchors": trust_anchors}})
        reader = c2pa.Reader(str(path), context=context) if context else c2pa.Reader(str(path))
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
    except Exception as e:  # noqa: BLE001 - the library raises one class per cause
        if type(e).__name__.endswith(_NO_MANIFEST):  # the usual case: nothing there, or not a C2PA format
            return None
        log.info("C2PA manifest of %s unreadable: %s", path, e)
        return Provenance(state="unreadable", failures=[f"{type(e).__name__}: {e}"[:300]])
    active = store.get("manifests", {}).get(store.get("active_manifest"), {})
    failures = [f["code"] for f in (results.get("activeManifest") or {}).get("failure", [])]
    failures += [s["code"] for s in store.get("validation_status", []) if s["code"] not in failures]
    actions = [Action(action=a.get("action", ""), digital_source_type=_source_type(a.get("digitalSourceType")),
                      software_agent=_agent(a.get("softwareAgent")))
               for x in active.get("assertions", []) if x.get("label", "").startswith("c2pa.actions")
               for a in x.get("data", {}).get("actions", [])]
    if any(code.endswith(TAMPER_CODES) for code in failures):
        verdict = "tampered"
    else:
        verdict = {"Trusted": "trusted", "Valid": "valid"}.get(state or "", "invalid")
        if verdict == "invalid" and failures and all(c.startswith("signingCredential.") for c in failures):
            verdict = "valid"  # intact and signed, by a signer outside the trust list (reported in failures)
    info = active.get("signature_info") or {}
    generators = active.get("claim_generator_info") or []
    return Provenance(
        state=verdict, title=active.get("title"),
        claim_generator=active.get("claim_generator") or (" ".join(filter(None, (generators[0].get("name"),
                                                                              generators[0].get("version"))))
                                                          if generators else None),
        signer=" / ".join(filter(None, (info.get("common_name"), info.get("issuer")))) or None,
        actions=actions, declared_ai=any(a.digital_source_type in AI_SOURCE_TYPES for a in actions), failures=failures)


def _source_type(uri: str | None) -> str | None:
    return uri.rstrip("/").rsplit("/", 1)[-1] if uri else None


def _agent(agent) -> str | None:
    if isinstance(agent, dict):
        return " ".join(filter(None, (agent.get("name"), agent.get("version")))) or None
    return agent
