"""rdscard: smart card sign-in and smart card redirection for Remote Desktop."""

__version__ = "0.1.0"
PRODUCT_NAME = "rdscard"
