"""S3 archive for stage cleaning: ``"archive_location": "s3://bucket/prefix/"``.

Needs the ``s3`` extra (``pip install 'drivetrain[s3]'``, which brings boto3). See
:class:`S3Archive`; options in :data:`OPTIONS_SCHEMA`.
"""

from .archive import S3Archive, write_parquet
from .settings import OPTIONS_SCHEMA, S3Location, S3Settings

__all__ = ["OPTIONS_SCHEMA", "S3Archive", "S3Location", "S3Settings", "write_parquet"]
