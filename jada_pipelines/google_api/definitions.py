"""The Google domain contributes the ``google`` resource; the port-sheet assets use it."""

import dagster as dg

from jada_pipelines.google_api.resources import GoogleCredentialsResource

defs = dg.Definitions(resources={"google": GoogleCredentialsResource()})
