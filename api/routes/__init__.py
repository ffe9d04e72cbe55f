"""One router per resource; handlers stay thin and call api.services.

A handler is named after its HTTP operation: the method, the resource, then any action
(``post_job``, ``get_job_by_id``, ``post_job_cancel``), so it never shares a name with the service
or ``lifecycle`` function it calls. A renamed handler pins the operationId it was published under.
"""
