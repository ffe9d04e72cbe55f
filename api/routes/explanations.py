"""A job's monitoring outputs: Grad-CAM heatmaps of its most suspicious faces, and its statistics.

Heatmaps come as JSON and as the stored images; everything stays within the caller's tenant.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from api.deps import CurrentKey, SessionDep, StorageDep
from api.errors import error_responses
from api.schemas.monitoring import ExplanationPage, JobStatisticsPublic
from api.services import explanations as service

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["explanations"])


@router.get(
    "/{job_id}/explanations",
    response_model=ExplanationPage,
    summary="Grad-CAM heatmaps of the job's most suspicious faces",
    description=(
        "The top `EXPLAIN_TOP_K` faces of the job by P(fake), ranked, with links to the heatmap (the "
        "crop the classifier saw, with the heatmap blended over it) and the plain crop. `all=true` "
        "lists every face a segment explained, including those outside the job's top k."
    ),
    responses=error_responses(401, 404),
    operation_id="list_explanations_v1_jobs__job_id__explanations_get",
)
def get_job_explanations(
    job_id: str,
    key: CurrentKey,
    session: SessionDep,
    include_all: Annotated[
        bool, Query(alias="all", description="every explained face, ranked or not")
    ] = False,
) -> ExplanationPage:
    return ExplanationPage(
        items=service.list_explanations(
            session, tenant_id=key.tenant_id, job_id=job_id, include_unranked=include_all
        )
    )


@router.get(
    "/{job_id}/explanations/{explanation_id}/{kind}.jpg",
    response_class=Response,
    summary="One explanation's image: the heatmap or the plain crop (JPEG)",
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "the image"},
        **error_responses(401, 404, 422, 503),
    },
    operation_id="explanation_image_v1_jobs__job_id__explanations__explanation_id___kind__jpg_get",
)
def get_explanation_image(
    job_id: str,
    explanation_id: Annotated[int, Path(ge=1)],
    kind: Literal["heatmap", "crop"],
    key: CurrentKey,
    session: SessionDep,
    storage: StorageDep,
) -> Response:
    data = service.explanation_image(
        session, storage, tenant_id=key.tenant_id, job_id=job_id, explanation_id=explanation_id, kind=kind
    )
    return Response(
        data,
        media_type="image/jpeg",
        # Derived from ids and never rewritten once the job has finished; private to the tenant.
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.get(
    "/{job_id}/statistics",
    response_model=JobStatisticsPublic,
    summary="The job's input statistics and output statistics (used for drift)",
    responses=error_responses(401, 404),
    operation_id="get_statistics_v1_jobs__job_id__statistics_get",
)
def get_job_statistics(job_id: str, key: CurrentKey, session: SessionDep) -> JobStatisticsPublic:
    return service.get_statistics(session, tenant_id=key.tenant_id, job_id=job_id)
