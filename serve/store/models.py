"""The model registry: every bundle a server used or was offered, by version (weights hash), with its
state: `live` (scores uploads; one per modality), `shadow` (scores a share of uploads beside the live one,
recorded in `shadow_scores`, never deciding; one per modality), `candidate` (registered) or `retired`.
Promotion and rollback change states in one transaction and are audited; servers sharing the database
switch to the live versions they read (serve/engine.py)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from detector.bundle import BundleMeta
from serve.store.audit import record
from serve.store.tables import Conflict, Missing, Repository, models, row, shadow_scores


class Models(Repository):
    def register(self, meta: BundleMeta, path: str, actor: str, live_if_none: bool = False) -> dict:
        """Add a bundle as a candidate (live when `live_if_none` and its modality has no live model yet);
        a version already registered is left as it is."""
        try:
            return self._register(meta, path, actor, live_if_none)
        except sa.exc.IntegrityError:  # another server registered it at that moment (replicas starting together)
            return self.get(meta.version)

    def _register(self, meta: BundleMeta, path: str, actor: str, live_if_none: bool) -> dict:
        now = time.time()
        with self.engine.begin() as c:
            found = row(c.execute(sa.select(models).where(models.c.version == meta.version)).first())
            if found:
                return found
            live = c.execute(sa.select(models.c.version).where(
                (models.c.modality == meta.modality) & (models.c.state == "live"))).scalar()
            state = "live" if live_if_none and live is None else "candidate"
            c.execute(models.insert().values(
                version=meta.version, modality=meta.modality, name=meta.name or meta.family, path=path,
                parent=meta.training.get("parent") or live,  # what it was fine-tuned from, else what is live now
                data=meta.training, metrics=meta.metrics, state=state, created_at=now, changed_at=now))
            record(c, None, actor, "model_registered", {"version": meta.version, "modality": meta.modality,
                                                        "path": path, "state": state}, now)
        return self.get(meta.version)

    def get(self, version: str) -> dict | None:
        return self.one(sa.select(models).where(models.c.version == version))

    def listed(self) -> list[dict]:
        return self.all(sa.select(models).order_by(models.c.modality, models.c.created_at))

    def by_modality(self, state: str = "live") -> dict[str, dict]:
        """The model of each modality in `state` (live or shadow: one each at most)."""
        return {m["modality"]: m for m in self.all(sa.select(models).where(models.c.state == state))}

    @staticmethod
    def _not_live(c: sa.Connection, version: str) -> dict:
        """A registered model that is not live (Missing, Conflict otherwise)."""
        found = row(c.execute(sa.select(models).where(models.c.version == version)).first())
        if found is None:
            raise Missing(f"no model {version!r} in the registry (register its bundle first)")
        if found["state"] == "live":
            raise Conflict(f"{version} is live already")
        return found

    def shadow(self, version: str, actor: str) -> dict:
        """Score a share of uploads with `version` beside its modality's live model, recorded only; the
        shadow it replaces goes back to being a candidate."""
        now = time.time()
        with self.engine.begin() as c:
            new = self._not_live(c, version)
            c.execute(models.update().where((models.c.modality == new["modality"]) & (models.c.state == "shadow"))
                      .values(state="candidate", changed_at=now))
            c.execute(models.update().where(models.c.version == version).values(state="shadow", changed_at=now))
            record(c, None, actor, "model_shadowed", {"version": version, "modality": new["modality"]}, now)
        return self.get(version)

    def record_shadow(self, upload_id: str, version: str, modality: str, score: float | None,
                      decision: str | None) -> None:
        """A shadow model's score of an upload (kept once: a job scored again keeps the first)."""
        try:
            with self.engine.begin() as c:
                c.execute(shadow_scores.insert().values(upload_id=upload_id, version=version, modality=modality,
                                                        score=score, decision=decision, at=time.time()))
        except sa.exc.IntegrityError:
            pass

    def promote(self, version: str, actor: str) -> dict:
        """Make `version` its modality's live model; the one it replaces is retired (and becomes its parent)."""
        now = time.time()
        with self.engine.begin() as c:
            new = self._not_live(c, version)
            old = c.execute(sa.select(models.c.version).where(
                (models.c.modality == new["modality"]) & (models.c.state == "live"))).scalar()
            c.execute(models.update().where(models.c.version == old).values(state="retired", changed_at=now))
            c.execute(models.update().where(models.c.version == version).values(
                state="live", parent=old or new["parent"], changed_at=now))
            record(c, None, actor, "model_promoted", {"version": version, "modality": new["modality"], "replaced": old}, now)
        return self.get(version)

    def rollback(self, modality: str, actor: str) -> dict:
        """Put back the model the live one replaced (its parent); the live one is retired."""
        live = self.by_modality().get(modality)
        if live is None or not live["parent"] or self.get(live["parent"]) is None:
            raise Conflict(f"no earlier {modality} model to roll back to")
        now = time.time()
        with self.engine.begin() as c:
            done = c.execute(models.update().where((models.c.version == live["version"]) & (models.c.state == "live"))
                             .values(state="retired", changed_at=now))
            if done.rowcount != 1:
                raise Conflict("the live model changed meanwhile: look again")
            c.execute(models.update().where(models.c.version == live["parent"]).values(state="live", changed_at=now))
            record(c, None, actor, "model_rolled_back", {"modality": modality, "from": live["version"],
                                                         "to": live["parent"]}, now)
        return self.get(live["parent"])
